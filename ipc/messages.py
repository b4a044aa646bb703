"""Every message that crosses the server <-> handler socket.

Messages are msgspec Structs in two tagged unions, one per direction. New
fields get defaults; any other change bumps ``PROTOCOL_VERSION``.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from ipc.audio_messages import Segment, Transcribe, Transcript, Word
from ipc.image_messages import GenerateImage, ImageProgress, ImageResult, ImagesDone
from ipc.shm_ref import ShmRef

PROTOCOL_VERSION = 5

__all__ = [
    "GenerateImage",
    "ImageProgress",
    "ImageResult",
    "ImagesDone",
    "Segment",
    "ShmRef",
    "Transcribe",
    "Transcript",
    "Word",
]


class ToolCall(msgspec.Struct, omit_defaults=True):
    """A complete function call: ``arguments`` is a JSON object as text."""

    id: str
    name: str
    arguments: str


class TextPart(msgspec.Struct, tag="text"):
    """Text between a message's images."""

    text: str


class ImagePart(msgspec.Struct, tag="image"):
    """One image of a chat message: its file's bytes (PNG, JPEG, WebP or GIF,
    checked by the server) in a shared-memory segment the server owns and
    releases when the request ends."""

    image: ShmRef
    # OpenAI's ``detail``: "low" bounds the image to 512x512 before encoding.
    detail: Literal["auto", "low", "high"] = "auto"


class ChatMessage(msgspec.Struct, omit_defaults=True):
    """One chat message as the handler's chat template sees it. A message
    with images also lists its ``parts`` in order (``content`` is then its
    text alone)."""

    role: str
    content: str | None = None
    parts: list[TextPart | ImagePart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    reasoning_content: str | None = None


class ToolSpec(msgspec.Struct, omit_defaults=True):
    """A function the model may call; ``parameters`` is a JSON schema."""

    name: str
    description: str | None = None
    parameters: dict[str, Any] = {}
    strict: bool = False


class JsonSchemaFormat(msgspec.Struct, omit_defaults=True):
    """``response_format``: the answer is a JSON value valid against ``schema``
    (``{"type": "object"}`` for plain JSON mode)."""

    schema: dict[str, Any]
    name: str = "response"
    strict: bool = False


ToolChoice = Literal["auto", "none", "required"]


class Sampling(msgspec.Struct, omit_defaults=True):
    """Sampling parameters with the one set of defaults every engine uses
    (the Bodega docs': temperature 0.7, top_p 1.0). ``top_k`` 0 and ``min_p``
    0.0 switch those filters off; ``seed`` None draws a fresh one."""

    temperature: float = 0.7
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    seed: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repetition_penalty: float = 1.0


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
    tools: list[ToolSpec] = []
    # "auto" | "none" | "required", or the name of the one function to call.
    tool_choice: str = "auto"
    parallel_tool_calls: bool = True
    response_format: JsonSchemaFormat | None = None
    chat_template_kwargs: dict[str, Any] = {}
    # ``logprobs``: each generated token's log-probability, with the
    # ``top_logprobs`` most likely alternatives.
    logprobs: bool = False
    top_logprobs: int = 0
    logit_bias: dict[int, float] = {}
    # None: generate until a stop, end of sequence or the end of the context.
    # Engines stop at the context's end either way (finish reason "length").
    # ``ignore_eos`` decodes past end-of-sequence; no end of sequence is
    # accepted before ``min_tokens`` tokens (llama.cpp's extensions).
    ignore_eos: bool = False
    min_tokens: int = 0
    # OpenAI's ``reasoning_effort`` ("none" ... "high"): passed to the chat
    # template, and "none"/"minimal" turn a template's thinking switch off.
    reasoning_effort: str | None = None
    # The HTTP request's X-Request-ID, for the handler's log lines.
    request_id: str = ""


class Cancel(msgspec.Struct, tag="cancel"):
    """Drop queued work or stop running work before its next step."""

    req_id: int


class GetStats(msgspec.Struct, tag="get_stats"):
    """Ask for a ``Stats`` answer carrying the same ``req_id``."""

    req_id: int


class Shutdown(msgspec.Struct, tag="shutdown"):
    """Start nothing more and exit (the process exit frees the engine)."""


class Embed(msgspec.Struct, tag="embed"):
    """Embed inputs: ``texts``, or ``token_ids`` (the inputs' tokens without
    the model's special tokens). Inputs longer than the model's maximum fail
    unless ``truncate``; ``dimensions`` truncates and re-normalises."""

    req_id: int
    texts: list[str] = []
    token_ids: list[list[int]] = []
    truncate: bool = False
    dimensions: int | None = None
    embedding_type: Literal["dense", "sparse", "colbert"] = "dense"
    return_sparse: bool = False
    # The HTTP request's X-Request-ID, for the handler's log lines.
    request_id: str = ""


class Rerank(msgspec.Struct, tag="rerank"):
    """Score each document's relevance to ``query`` (higher is better)."""

    req_id: int
    query: str
    documents: list[str]
    # The HTTP request's X-Request-ID, for the handler's log lines.
    request_id: str = ""


class ReleaseShm(msgspec.Struct, tag="release_shm"):
    """The server has read a shared-memory payload: its creator may unlink it."""

    name: str


ServerMessage = (
    Hello
    | Generate
    | Cancel
    | GetStats
    | Shutdown
    | Transcribe
    | Embed
    | Rerank
    | GenerateImage
    | ReleaseShm
)

# Requests the handler queues and runs on an engine thread, each answered by
# frames carrying its ``req_id`` and ending with one of ``TERMINAL_TYPES``.
# Services build them with ``req_id`` 0; the server's handler process stamps it.
WorkMessage = Generate | Transcribe | Embed | Rerank | GenerateImage
WORK_TYPES: tuple[type, ...] = (Generate, Transcribe, Embed, Rerank, GenerateImage)


# --- handler -> server ----------------------------------------------------


class Ready(msgspec.Struct, tag="ready"):
    """The engine is loaded; the handler accepts work."""

    protocol_version: int
    pid: int
    context_length: int
    engine: str


class TopLogprob(msgspec.Struct, array_like=True):
    """One alternative token: its text, UTF-8 bytes and log-probability."""

    token: str
    bytes: list[int]
    logprob: float


class TokenLogprob(msgspec.Struct, array_like=True):
    """A generated token with its log-probability and the top alternatives."""

    token: str
    bytes: list[int]
    logprob: float
    top: list[TopLogprob] = []


class ToolCallDelta(msgspec.Struct, omit_defaults=True):
    """Part of a streamed tool call: the first part of call ``index`` carries
    its ``id`` and ``name``, later parts fragments of its ``arguments``."""

    index: int
    id: str = ""
    name: str = ""
    arguments: str = ""


class Delta(msgspec.Struct, tag="delta", omit_defaults=True):
    """A piece of a running request's output: answer text, reasoning text,
    tool-call parts, and the log-probabilities of the tokens it covers."""

    req_id: int
    text: str = ""
    n_tokens: int = 1
    reasoning: str = ""
    tool_calls: list[ToolCallDelta] = []
    logprobs: list[TokenLogprob] = []


FinishReason = Literal["stop", "length", "tool_calls", "cancelled"]


class Finished(msgspec.Struct, tag="finished"):
    """The last frame of a request that did not fail."""

    req_id: int
    reason: FinishReason
    usage: Usage = msgspec.field(default_factory=Usage)
    # The request's stop sequence that ended the output ("" when none did).
    stop_sequence: str = ""


ErrorKind = Literal[
    "load_error",
    "not_found",
    "protocol_error",
    "invalid_request",
    "context_length_exceeded",
    "too_large",
    "internal",
]


class Failed(msgspec.Struct, tag="failed"):
    """The last frame of a request that failed; ``req_id`` 0 is the load."""

    req_id: int
    kind: ErrorKind
    message: str
    param: str | None = None


class EngineMemory(msgspec.Struct, omit_defaults=True):
    """Memory an engine reports, in bytes (0 where the engine cannot tell):
    its weights, the accelerator memory in use, held in its cache and at peak;
    llama.cpp also its model, KV cache and compute buffers."""

    weights_bytes: int = 0
    active_bytes: int = 0
    cache_bytes: int = 0
    peak_bytes: int = 0
    # llama.cpp's own buffers over all devices (its load log; 0 elsewhere).
    model_buffer_bytes: int = 0
    kv_cache_bytes: int = 0
    compute_buffer_bytes: int = 0


class EngineCounters(msgspec.Struct, omit_defaults=True):
    """Work counters of engines that batch and cache (embeddings), and of
    speculative decoding: tokens generated with a draft model, how many of
    them the draft proposed and the model accepted, and the draft length."""

    cache_entries: int = 0
    cache_hits: int = 0
    batches: int = 0
    rows_embedded: int = 0
    spec_tokens: int = 0
    spec_accepted: int = 0
    spec_draft_length: int = 0


class Stats(msgspec.Struct, tag="stats"):
    """Process and engine figures of one handler."""

    req_id: int
    pid: int
    rss_bytes: int
    tokens_generated: int = 0
    memory: EngineMemory = msgspec.field(default_factory=EngineMemory)
    counters: EngineCounters = msgspec.field(default_factory=EngineCounters)


class Embeddings(msgspec.Struct, tag="embeddings", omit_defaults=True):
    """The last frame of an ``Embed``: ``rows`` x ``dim`` little-endian
    float32 values, row-major, inline or in shared memory (answer a ``ShmRef``
    with ``ReleaseShm`` once read). ``counts``: for multi-vector (colbert)
    output, the rows of each input; ``sparse``: token id -> weight per input."""

    req_id: int
    rows: int
    dim: int
    vectors: bytes | ShmRef = b""
    counts: list[int] = []
    sparse: list[dict[int, float]] | None = None
    prompt_tokens: int = 0


class RerankResult(msgspec.Struct, tag="rerank_result"):
    """The last frame of a ``Rerank``: one score per document, in order."""

    req_id: int
    scores: list[float]
    prompt_tokens: int = 0


HandlerMessage = (
    Ready
    | Delta
    | Finished
    | Failed
    | Stats
    | Segment
    | Transcript
    | Embeddings
    | RerankResult
    | ImageProgress
    | ImageResult
    | ImagesDone
)

# The last frame of a request; nothing with its ``req_id`` follows.
TERMINAL_TYPES: tuple[type, ...] = (
    Finished,
    Failed,
    Transcript,
    Embeddings,
    RerankResult,
    ImagesDone,
)
