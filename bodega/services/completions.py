"""Legacy completions: OpenAI prompt requests -> handler ``Generate`` fields."""

from __future__ import annotations

from bodega.errors import InvalidRequest
from bodega.openai.requests import CompletionRequest


def prompt_of(request: CompletionRequest) -> str:
    """The single prompt of the request; refuse what is not supported yet."""
    if request.echo:
        raise InvalidRequest("echo is not supported yet", param="echo")
    if request.suffix:
        raise InvalidRequest("suffix is not supported yet", param="suffix")
    if request.best_of not in (None, 1):
        raise InvalidRequest("best_of must be 1", param="best_of")
    prompt = request.prompt
    if isinstance(prompt, list):
        if len(prompt) != 1:
            raise InvalidRequest(
                "prompt must be one string (batches are not supported yet)", param="prompt"
            )
        prompt = prompt[0]
    return prompt
