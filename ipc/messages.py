"""Every message that crosses the server <-> handler socket.

Messages are msgspec Structs in two tagged unions, one per direction. New
fields get defaults; any other change bumps ``PROTOCOL_VERSION``.
"""

from __future__ import annotations

from typing import Literal

import msgspec

PROTOCOL_VERSION = 2


class ShmRef(msgspec.Struct, frozen=True, tag="shm"):
    """A payload that lives in a shared-memory segment instead of the frame."""

    name: str
    size: int


class ChatMessage(msgspec.Struct, omit_defaults=True):
    """One chat message as the handler's chat template sees it."""

    role: str
    content: str | None = None
    name: str | None = None


class Sampling(msgspec.Struct, omit_defaults=True):
    """Sampling parameters; ``None`` means the engine's default."""

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    repetition_penalty: float | None = None


class Usage(msgspec.Struct):
    """Token accounting of one finished request."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0


# --- server -> handler ----------------------------------------------------


class Hello(msgspec.Struct, tag="hello"):
    """First frame on a new connection; the handler checks the version."""

    protocol_version: int
    server_pid: int


class Generate(msgspec.Struct, tag="generate"):
    """Generate text: ``messages`` for chat (template applied by the handler)
    or a raw ``prompt`` for legacy completions."""

    req_id: int
    messages: list[ChatMessage] | None = None
    prompt: str | None = None
    max_tokens: int | None = None
    stop: list[str] = []
    sampling: Sampling = msgspec.field(default_factory=Sampling)


class Cancel(msgspec.Struct, tag="cancel"):
    """Drop queued work or stop running work before its next step."""

    req_id: int


class GetStats(msgspec.Struct, tag="get_stats"):
    """Ask for a ``Stats`` answer carrying the same ``req_id``."""

    req_id: int


class Shutdown(msgspec.Struct, tag="shutdown"):
    """Start nothing more and exit (the process exit frees the engine)."""


ServerMessage = Hello | Generate | Cancel | GetStats | Shutdown

# Requests the handler queues and runs on an engine thread, each answered by
# frames carrying its ``req_id`` and ending with one of ``TERMINAL_TYPES``.
WORK_TYPES: tuple[type, ...] = (Generate,)


# --- handler -> server ----------------------------------------------------


class Ready(msgspec.Struct, tag="ready"):
    """The engine is loaded; the handler accepts work."""

    protocol_version: int
    pid: int
    context_length: int
    engine: str


class Delta(msgspec.Struct, tag="delta"):
    """A piece of generated text of a running request."""

    req_id: int
    text: str
    n_tokens: int = 1


FinishReason = Literal["stop", "length", "cancelled"]


class Finished(msgspec.Struct, tag="finished"):
    """The last frame of a request that did not fail."""

    req_id: int
    reason: FinishReason
    usage: Usage = msgspec.field(default_factory=Usage)


ErrorKind = Literal[
    "load_error",
    "not_found",
    "protocol_error",
    "invalid_request",
    "context_length_exceeded",
    "internal",
]


class Failed(msgspec.Struct, tag="failed"):
    """The last frame of a request that failed; ``req_id`` 0 is the load."""

    req_id: int
    kind: ErrorKind
    message: str
    param: str | None = None


class Stats(msgspec.Struct, tag="stats"):
    """Process and engine figures; memory figures are in bytes."""

    req_id: int
    pid: int
    rss_bytes: int
    tokens_generated: int = 0
    engine_memory: dict[str, float] = {}


HandlerMessage = Ready | Delta | Finished | Failed | Stats

# The last frame of a request; nothing with its ``req_id`` follows.
TERMINAL_TYPES: tuple[type, ...] = (Finished, Failed)


# --- the handler's command line -----------------------------------------


class LoadSpec(msgspec.Struct, omit_defaults=True):
    """What a handler loads; passed as JSON in ``--spec`` at spawn."""

    model_id: str
    model_path: str
    model_type: str = "lm"
    engine: str = "auto"
    context_length: int | None = None
    max_concurrency: int = 1
    prompt_cache_size: int = 0
    chat_template_file: str | None = None
    n_threads: int | None = None
    lora_paths: list[str] | None = None
    lora_scales: list[float] | None = None
    trust_remote_code: bool = False
    draft_model_path: str | None = None
    num_draft_tokens: int | None = None
