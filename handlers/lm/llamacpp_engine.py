"""Language models in GGUF files on llama.cpp, through the xllamacpp package.

xllamacpp runs llama.cpp's server loop in-process: it batches the requests it
is handed from several threads into shared decode steps (continuous batching
over ``n_parallel`` slots) and reuses each slot's KV cache by longest common
prefix (its prompt cache). Each call blocks its thread and streams chunks to a
callback; returning True from the callback stops that request.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from catalog.options import LoadOptions
from handlers.convert.gguf import GGUFError, read_metadata, trained_context_length
from handlers.engine_protocol import ContextLengthExceeded, Emit, EngineError, LoadError, ShouldStop
from handlers.lm.chat_output import OutputStream
from handlers.lm.chat_request import prepare_chat
from handlers.lm.chat_template import ChatTemplate
from handlers.lm.constraints import UnsupportedSchema, to_lark
from ipc.messages import (
    EngineMemory,
    Finished,
    FinishReason,
    Generate,
    TokenLogprob,
    TopLogprob,
    Usage,
)

DEFAULT_CONTEXT_LENGTH = 32768
# For GGUF files that carry no chat template.
CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def _sampling_fields(request: Generate) -> dict[str, Any]:
    s = request.sampling
    fields: dict[str, Any] = {
        "temperature": s.temperature,
        "top_p": s.top_p,
        "top_k": s.top_k,
        "min_p": s.min_p,
        "seed": s.seed,
        "presence_penalty": s.presence_penalty,
        "frequency_penalty": s.frequency_penalty,
        "repeat_penalty": s.repetition_penalty,
    }
    return {k: v for k, v in fields.items() if v is not None}


class LlamaCppEngine:
    """A GGUF model served by llama.cpp with ``max_concurrency`` slots."""

    name = "llamacpp"

    def __init__(self, spec: LoadOptions) -> None:
        import xllamacpp

        path = Path(spec.model_path)
        try:
            meta = read_metadata(path, skip_arrays=False)
        except (OSError, GGUFError) as exc:
            raise LoadError(f"cannot read GGUF file {path}: {exc}") from exc
        trained = trained_context_length(meta)
        self.context_length = spec.context_length or min(
            trained or DEFAULT_CONTEXT_LENGTH, DEFAULT_CONTEXT_LENGTH
        )
        self.parallel = max(1, spec.max_concurrency)

        params = xllamacpp.CommonParams()
        params.model.path = str(path)
        # Each slot gets the full context length; the KV cache is split evenly.
        params.n_ctx = self.context_length * self.parallel
        params.n_parallel = self.parallel
        params.cont_batching = True
        params.use_jinja = True
        params.cache_prompt = True
        params.warmup = False
        if not os.environ.get("BODEGA_ENGINE_LOGS"):
            params.verbosity = 1  # llama.cpp's per-request timing lines are noise in our log
        # llama.cpp also opens its own HTTP port on localhost; lock it with a
        # key nobody knows, so no local process can bypass our admission.
        params.api_keys = [secrets.token_hex(32)]
        params.cpuparams.n_threads = spec.n_threads or max(1, os.cpu_count() or 1)
        params.cpuparams_batch.n_threads = params.cpuparams.n_threads
        self._spec = spec
        self._template = _chat_template(meta, spec)
        self._vocab_size = len(meta.get("tokenizer.ggml.tokens") or [])
        try:
            self._server = xllamacpp.Server(params)
        except Exception as exc:  # the binding raises plain RuntimeError
            raise LoadError(f"llama.cpp could not load {path}: {exc}") from exc
        self._model_bytes = path.stat().st_size

    def generate(self, request: Generate, emit: Emit, should_stop: ShouldStop) -> Finished:
        """Run one chat or prompt completion, streaming each token to ``emit``.

        Chat prompts are rendered by our template code (tools, past calls,
        ``chat_template_kwargs``) and sent to llama.cpp as raw prompts, so
        both engines parse tool calls and reasoning the same way.
        """
        body: dict[str, Any] = {
            "stream": True,
            "stream_options": {"include_usage": True},
            "cache_prompt": True,
            **_sampling_fields(request),
        }
        if request.max_tokens is not None:
            body["max_tokens"] = request.max_tokens
        if request.stop:
            body["stop"] = request.stop
        if request.logprobs:
            body["logprobs"] = max(1, request.top_logprobs)
        if request.logit_bias:
            outside = [t for t in request.logit_bias if t >= self._vocab_size]
            if outside:
                raise EngineError(
                    f"logit_bias token id {outside[0]} is outside the vocabulary "
                    f"(0..{self._vocab_size - 1})",
                    param="logit_bias",
                )
            body["logit_bias"] = [[token, bias] for token, bias in request.logit_bias.items()]
        chat = request.messages is not None
        parses_tools = False
        if chat:
            prepared = prepare_chat(request, self._template, self._spec)
            body["prompt"] = prepared.prompt
            if prepared.constraint is not None:
                body["grammar"] = _checked_grammar(
                    to_lark(prepared.constraint),
                    "response_format.json_schema.schema" if request.response_format else "tools",
                )
            output = OutputStream(emit, prepared.parser)
            parses_tools = prepared.parses_tools
        else:
            body["prompt"] = request.prompt or ""
            output = OutputStream(emit, None)

        state: dict[str, Any] = {"reason": None, "usage": None, "error": None}

        def on_chunk(chunk: dict[str, Any]) -> bool:
            if "error" in chunk:
                state["error"] = chunk["error"]
                return True
            if chunk.get("usage"):
                state["usage"] = chunk["usage"]
            for choice in chunk.get("choices") or ():
                if choice.get("finish_reason"):
                    state["reason"] = choice["finish_reason"]
                    continue
                text = choice.get("text")
                if text is not None:
                    # llama.cpp holds back text that may start a stop string and
                    # releases it later in one chunk: each chunk is one token.
                    output.add(text, 1, _logprobs(choice.get("logprobs"), request.top_logprobs))
            return should_stop()

        result = self._server.handle_completions(body, on_chunk)
        if isinstance(result, dict) and "error" in result:
            state["error"] = result["error"]
        if state["error"] is not None:
            raise _request_error(state["error"], "messages" if chat else "prompt")
        output.close()

        usage = state["usage"] or {}
        reason: FinishReason
        if should_stop() and state["reason"] is None:
            reason = "cancelled"
        elif state["reason"] == "length":
            reason = "length"
        else:
            reason = "tool_calls" if parses_tools and output.tool_calls else "stop"
        return Finished(
            req_id=request.req_id,
            reason=reason,
            usage=Usage(
                prompt_tokens=usage.get("prompt_tokens", 0),
                completion_tokens=usage.get("completion_tokens", output.tokens_seen),
                cached_tokens=(usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0),
            ),
        )

    def memory(self) -> EngineMemory:
        """The size of the mapped weights; llama.cpp reports nothing finer."""
        return EngineMemory(weights_bytes=self._model_bytes)

    def close(self) -> None:
        """Stop llama.cpp's loop and free the model."""
        del self._server


def _checked_grammar(grammar: str, param: str) -> str:
    """``grammar`` if llguidance compiles it; llama.cpp would only log the error
    and decode unconstrained, so an unsupported schema must be refused here."""
    from llguidance import LLMatcher

    error = LLMatcher.validate_grammar(grammar)
    if error:
        reason = error.splitlines()[0].split(": ", 1)[-1]
        raise UnsupportedSchema(
            f"the schema cannot be used for constrained decoding: {reason}", param=param
        )
    return grammar


def _chat_template(meta: dict[str, Any], spec: LoadOptions) -> ChatTemplate:
    """The model's chat template (or ``chat_template_file``), checked at load."""
    source = meta.get("tokenizer.chat_template") or CHATML_TEMPLATE
    if spec.chat_template_file:
        try:
            source = Path(spec.chat_template_file).read_text()
        except OSError as exc:
            raise LoadError(f"cannot read chat_template_file: {exc}") from exc
    tokens = meta.get("tokenizer.ggml.tokens") or []

    def token(key: str) -> str:
        index = meta.get(key)
        return str(tokens[index]) if isinstance(index, int) and index < len(tokens) else ""

    try:
        return ChatTemplate(
            source,
            bos_token=token("tokenizer.ggml.bos_token_id"),
            eos_token=token("tokenizer.ggml.eos_token_id"),
        )
    except Exception as exc:  # jinja2's TemplateSyntaxError and friends
        raise LoadError(f"the chat template is not valid Jinja: {exc}") from exc


def _request_error(error: dict[str, Any], prompt_field: str) -> EngineError:
    message = str(error.get("message", "llama.cpp rejected the request"))
    if error.get("type") == "exceed_context_size_error":
        return ContextLengthExceeded(
            f"This model's maximum context length is {error.get('n_ctx')} tokens, "
            f"but the prompt has {error.get('n_prompt_tokens')} tokens. "
            "Shorten the prompt or load the model with a larger context_length.",
            param=prompt_field,
        )
    return EngineError(message)


def _logprobs(raw: dict[str, Any] | None, top: int) -> list[TokenLogprob] | None:
    """llama.cpp's OpenAI-style ``logprobs.content`` as our typed entries."""
    if not raw:
        return None
    return [
        TokenLogprob(
            token=entry.get("token", ""),
            bytes=list(entry.get("bytes") or []),
            logprob=float(entry.get("logprob", 0.0)),
            top=[
                TopLogprob(
                    token=alt.get("token", ""),
                    bytes=list(alt.get("bytes") or []),
                    logprob=float(alt.get("logprob", 0.0)),
                )
                for alt in (entry.get("top_logprobs") or [])[:top]
            ],
        )
        for entry in raw.get("content") or []
    ]
