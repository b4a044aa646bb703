"""Request fields shared by chat and completions, checked and converted."""

from __future__ import annotations

from bodega.errors import InvalidRequest
from bodega.openai.requests import SamplingFields
from ipc.messages import Sampling

MAX_STOP_SEQUENCES = 16
SAMPLING_FIELDS = Sampling.__struct_fields__


def sampling_of(request: SamplingFields) -> Sampling:
    """The sampling parameters a handler understands; unset ones keep
    ``Sampling``'s defaults, the same on every engine."""
    given = {name: getattr(request, name) for name in SAMPLING_FIELDS}
    return Sampling(**{name: value for name, value in given.items() if value is not None})


def stop_of(request: SamplingFields) -> list[str]:
    """``stop`` as a list, bounded and without empty strings."""
    stop = request.stop
    sequences = [stop] if isinstance(stop, str) else list(stop or [])
    if len(sequences) > MAX_STOP_SEQUENCES:
        raise InvalidRequest(f"stop takes at most {MAX_STOP_SEQUENCES} sequences", param="stop")
    if any(s == "" for s in sequences):
        raise InvalidRequest("stop sequences must not be empty", param="stop")
    return sequences
