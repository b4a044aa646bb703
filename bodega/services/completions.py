"""Legacy completions: an OpenAI prompt request -> the handler's ``Generate``."""

from __future__ import annotations

from bodega.errors import InvalidRequest
from bodega.openai.requests import CompletionRequest
from ipc.messages import Generate

from .chat import logit_bias_of
from .sampling import sampling_of, stop_of


def completion_request(request: CompletionRequest) -> Generate:
    """The ``Generate`` of a legacy completion request, checked."""
    return Generate(
        req_id=0,
        prompt=prompt_of(request),
        max_tokens=request.token_limit,
        stop=stop_of(request),
        sampling=sampling_of(request),
        logprobs=request.logprobs is not None,
        top_logprobs=request.logprobs or 0,
        logit_bias=logit_bias_of(request.logit_bias),
        ignore_eos=request.ignore_eos,
        min_tokens=request.min_tokens,
    )


def prompt_of(request: CompletionRequest) -> str:
    """The single prompt of the request (echo, suffix and best_of are refused
    by bodega.openai.field_policy before this)."""
    prompt = request.prompt
    if isinstance(prompt, list):
        if len(prompt) != 1:
            raise InvalidRequest(
                "prompt must be one string (batches are not supported yet)", param="prompt"
            )
        prompt = prompt[0]
    return prompt
