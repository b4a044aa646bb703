"""What both language-model engines check and decide about a request, in one place.

- The context: the prompt must leave room for at least one generated token
  (``prompt_tokens < context_length``), else ``ContextLengthExceeded`` naming
  ``messages`` (chat) or ``prompt`` (completions). An unset ``max_tokens``
  means "until a stop, the end of sequence or the end of the context"; a
  ``max_tokens`` beyond the room left is capped at the context's end (finish
  reason "length"), not refused.
- ``logit_bias``: a token id outside the vocabulary is a 400 naming it.
- ``ignore_eos`` and ``min_tokens`` (llama.cpp's and vLLM's extensions) apply
  to free text only: a constrained answer (``response_format``, forced tool
  calls) ends where its grammar ends.
- The finish reason of a request.
- Sampling penalties look back over the same window on both engines.
"""

from __future__ import annotations

from handlers.engine_protocol import ContextLengthExceeded, EngineError
from ipc.messages import FinishReason, Generate

# Repetition, presence and frequency penalties count the last this many tokens
# (llama.cpp's ``repeat_last_n`` default; mlx-lm's context sizes are set to it).
PENALTY_WINDOW = 64


def prompt_param(request: Generate) -> str:
    """The request field that carries the prompt: ``messages`` or ``prompt``."""
    return "messages" if request.messages is not None else "prompt"


def constraint_param(request: Generate) -> str:
    """The request field a constraint comes from: the response format or the tools."""
    return "response_format.json_schema.schema" if request.response_format else "tools"


def context_exceeded(request: Generate, prompt_tokens: int, context_length: int) -> EngineError:
    """The error of a prompt that leaves no room for an answer."""
    return ContextLengthExceeded(
        f"This model's maximum context length is {context_length} tokens, but the prompt "
        f"has {prompt_tokens} tokens, which leaves no room for an answer. Shorten the "
        "prompt or load the model with a larger context_length.",
        param=prompt_param(request),
    )


def check_max_tokens(request: Generate) -> None:
    """Refuse a ``max_tokens`` that allows no token at all."""
    if request.max_tokens is not None and request.max_tokens < 1:
        raise EngineError("max_tokens must be at least 1", param="max_tokens")


def token_budget(request: Generate, prompt_tokens: int, context_length: int) -> int:
    """The most tokens ``request`` may generate after a prompt of ``prompt_tokens``:
    its ``max_tokens``, capped at the end of the context."""
    check_max_tokens(request)
    room = context_length - prompt_tokens
    if room < 1:
        raise context_exceeded(request, prompt_tokens, context_length)
    return room if request.max_tokens is None else min(request.max_tokens, room)


def check_logit_bias(logit_bias: dict[int, float], vocab_size: int) -> None:
    """Refuse a bias on a token id the model does not have."""
    for token in logit_bias:
        if not 0 <= token < vocab_size:
            raise EngineError(
                f"logit_bias token id {token} is outside the vocabulary (0..{vocab_size - 1})",
                param="logit_bias",
            )


def eos_rules(request: Generate, constrained: bool) -> tuple[bool, int]:
    """(ignore_eos, min_tokens) as the engine applies them: neither for a
    constrained answer, whose grammar allows only the end once it is complete."""
    if constrained:
        return False, 0
    return request.ignore_eos, max(0, request.min_tokens)


def finish_reason(ended: str | None, *, cancelled: bool, tool_calls: bool) -> FinishReason:
    """The request's finish reason from how the engine ended it: ``ended`` is
    "length" when the token budget (or the context) ran out."""
    if cancelled:
        return "cancelled"
    if ended == "length":
        return "length"
    return "tool_calls" if tool_calls else "stop"
