"""Request fields shared by chat and completions, checked and converted."""

from __future__ import annotations

import msgspec

from bodega.errors import InvalidRequest
from bodega.openai.requests import SamplingFields
from bodega.settings import GenerationDefaults
from ipc.messages import Generate, Sampling

MAX_STOP_SEQUENCES = 16
SAMPLING_FIELDS = Sampling.__struct_fields__
DEFAULTED_SAMPLING = ("temperature", "top_p", "top_k", "repetition_penalty")


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


def with_defaults(
    message: Generate, request: object, defaults: GenerationDefaults | None
) -> Generate:
    """``message`` with a model's ``defaults`` in the sampling fields the
    request left out (or does not have), and in ``max_tokens`` when the
    message has none."""
    if defaults is None:
        return message
    sampling = {
        name: value
        for name in DEFAULTED_SAMPLING
        if getattr(request, name, None) is None and (value := getattr(defaults, name)) is not None
    }
    left_out = message.max_tokens is None or isinstance(
        getattr(request, "max_tokens", None), msgspec.UnsetType
    )
    max_tokens = defaults.max_tokens if left_out and defaults.max_tokens else message.max_tokens
    return msgspec.structs.replace(
        message,
        sampling=msgspec.structs.replace(message.sampling, **sampling),
        max_tokens=max_tokens,
    )
