"""Request fields shared by chat and completions, checked and converted."""

from __future__ import annotations

from bodega.errors import InvalidRequest
from bodega.openai.requests import SamplingFields
from ipc.messages import Sampling

MAX_STOP_SEQUENCES = 16


def sampling_of(request: SamplingFields) -> Sampling:
    """The sampling parameters a handler understands."""
    return Sampling(
        temperature=request.temperature,
        top_p=request.top_p,
        top_k=request.top_k,
        min_p=request.min_p,
        seed=request.seed,
        presence_penalty=request.presence_penalty,
        frequency_penalty=request.frequency_penalty,
        repetition_penalty=request.repetition_penalty,
    )


def stop_of(request: SamplingFields) -> list[str]:
    """``stop`` as a list, bounded and without empty strings."""
    stop = request.stop
    sequences = [stop] if isinstance(stop, str) else list(stop or [])
    if len(sequences) > MAX_STOP_SEQUENCES:
        raise InvalidRequest(f"stop takes at most {MAX_STOP_SEQUENCES} sequences", param="stop")
    if any(s == "" for s in sequences):
        raise InvalidRequest("stop sequences must not be empty", param="stop")
    return sequences
