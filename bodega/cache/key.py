"""Which requests the response cache may answer, and the key they are kept under.

A key covers the whole normalised request (the ``Generate`` the handler
would get, minus the ids stamped per request) and the model's identity: its
id, what it was loaded from (with the file's size and modification time)
and its load options, so a reloaded or different model never answers from
another's entries.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import msgspec

from bodega.registry.model import Model
from catalog.options import LoadOptions
from ipc.messages import Generate, ImagePart

_ENCODER = msgspec.json.Encoder(order="sorted")
_LOAD_FIELDS = frozenset(LoadOptions.__struct_fields__)


def cacheable(message: Generate, n: int) -> bool:
    """Whether the answer to ``message`` is reproducible: greedy (temperature
    0) or a fixed seed, one choice unless greedy, and no request images (their
    shared-memory names differ on every request)."""
    sampling = message.sampling
    greedy = sampling.temperature == 0
    if not greedy and (sampling.seed is None or n > 1):
        return False
    for chat_message in message.messages or []:
        if any(isinstance(part, ImagePart) for part in chat_message.parts or []):
            return False
    return True


def model_identity(model: Model) -> dict[str, Any]:
    """What makes ``model``'s answers its own: id, resolved files, load options."""
    spec = model.handler_spec
    options = {k: v for k, v in msgspec.structs.asdict(spec).items() if k in _LOAD_FIELDS}
    files: list[int] = []
    try:
        stat = os.stat(spec.model_path)
        files = [stat.st_size, stat.st_mtime_ns]
    except OSError:
        pass
    return {"id": model.id, "options": msgspec.to_builtins(options), "files": files}


def cache_key(model: Model, message: Generate, n: int) -> str:
    """The hex digest naming ``message``'s ``n`` choices on ``model``."""
    normal = msgspec.structs.replace(message, req_id=0, request_id="")
    payload = _ENCODER.encode([model_identity(model), n, normal])
    return hashlib.sha256(payload).hexdigest()
