"""Every route the server answers, with the msgspec types of its body and
answers: the one table ``document.py`` turns into OpenAPI 3.1."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

from bodega.anthropic.requests import CountTokensRequest, MessagesRequest
from bodega.anthropic.responses import CountTokensOut, MessageOut
from bodega.anthropic.responses import ErrorBody as AnthropicErrorBody
from bodega.api.tools import ExecuteRequest, ExecuteResponse
from bodega.catalog_presets.routes import ModelActionResponse
from bodega.forge_types import (
    ForgeError,
    ForgeGenerateAnswer,
    ForgeGenerateRequest,
    ForgeLoadAnswer,
    ForgeLoadRequest,
    ForgeStatus,
)
from bodega.openai.audio import Transcription, VerboseTranscription
from bodega.openai.embeddings import EmbeddingList, EmbeddingRequest, RerankRequest, RerankResponse
from bodega.openai.hub import DeletedModel, DownloadAnswer, DownloadRequest, ModelCard, ModelCards
from bodega.openai.images import ImageEditOptions, ImageGenerationRequest, ImagesResponse
from bodega.openai.models import (
    Health,
    LoadAnswer,
    LoadedModels,
    QueueStatsAnswer,
    Readiness,
    UnloadAnswer,
)
from bodega.openai.rag import Deleted, DocumentList, RagAnswer, RagQueryRequest, UploadResponse
from bodega.openai.requests import ChatCompletionRequest, CompletionRequest
from bodega.openai.responses import ChatCompletion, TextCompletion
from bodega.openai.vision import (
    BatchClassifyRequest,
    BatchClassifyResponse,
    ImageClassifyRequest,
    ImageClassifyResponse,
    VisionHealthResponse,
    VisionLoadRequest,
    VisionLoadResponse,
)
from bodega.orchestration.shape import OrchestratedCompletion
from bodega.responses.types import CreateResponse, DeletedResponse, InputItemList, Response
from bodega.settings import LoadRequest


class ErrorDetail(msgspec.Struct):
    """What went wrong; ``param`` names the field at fault."""

    message: str
    type: str
    param: str | None
    code: str | None


class ErrorBody(msgspec.Struct):
    """Every error answer (OpenAI's shape)."""

    error: ErrorDetail


class AnthropicError(AnthropicErrorBody):
    """Every error answer of ``/v1/messages`` and ``/v1/messages/count_tokens``
    (Anthropic's shape: ``{"type": "error", "error": {"type", "message"}}``)."""


class AudioForm(msgspec.Struct, kw_only=True):
    """The multipart form of ``/v1/audio/transcriptions`` and ``translations``."""

    file: bytes
    model: str | None = None
    language: str | None = None
    prompt: str | None = None
    response_format: str = "json"
    temperature: float | None = None
    stream: bool = False


class ImageEditForm(ImageEditOptions, kw_only=True):
    """The multipart form of ``/v1/images/edits``: the options and the files."""

    image: bytes
    mask: bytes | None = None


class UploadForm(msgspec.Struct):
    """The multipart form of ``/v1/rag/upload``."""

    file: bytes


@dataclass(frozen=True)
class Operation:
    """One method on one path: its body type and its answers by status code."""

    method: str
    path: str  # OpenAPI style: /v1/models/{model_id}
    summary: str
    body: Any = None  # a JSON body type
    form: Any = None  # a multipart/form-data body type
    # status -> type (None: any JSON; a tuple of types: any one of them)
    answers: dict[int, Any] = field(default_factory=dict)
    streams: bool = False  # may answer text/event-stream instead
    other_media: tuple[str, ...] = ()  # non-JSON 200 answers (text, metrics)
    tags: tuple[str, ...] = ()


OPERATIONS: tuple[Operation, ...] = (
    # With orchestration_mode, the completion gains ``orchestration``.
    Operation("post", "/v1/chat/completions", "Chat completion", ChatCompletionRequest,
              answers={200: (ChatCompletion, OrchestratedCompletion)}, streams=True,
              tags=("text",)),
    Operation("post", "/v1/completions", "Text completion", CompletionRequest,
              answers={200: TextCompletion}, streams=True, tags=("text",)),
    Operation("post", "/v1/messages", "Anthropic Messages", MessagesRequest,
              answers={200: MessageOut}, streams=True, tags=("text",)),
    Operation("post", "/v1/messages/count_tokens", "Anthropic token count", CountTokensRequest,
              answers={200: CountTokensOut}, tags=("text",)),
    Operation("post", "/v1/responses", "Create a response (OpenAI Responses API)",
              CreateResponse, answers={200: Response}, streams=True, tags=("responses",)),
    Operation("get", "/v1/responses/{response_id}", "A stored response",
              answers={200: Response}, tags=("responses",)),
    Operation("delete", "/v1/responses/{response_id}", "Delete a stored response",
              answers={200: DeletedResponse}, tags=("responses",)),
    Operation("post", "/v1/responses/{response_id}/cancel", "Cancel a background response",
              answers={200: Response}, tags=("responses",)),
    Operation("get", "/v1/responses/{response_id}/input_items", "A stored response's input items",
              answers={200: InputItemList}, tags=("responses",)),
    Operation("post", "/v1/embeddings", "Embeddings", EmbeddingRequest,
              answers={200: EmbeddingList}, tags=("embeddings",)),
    Operation("post", "/v1/rerank", "Rerank documents", RerankRequest,
              answers={200: RerankResponse}, tags=("embeddings",)),
    Operation("post", "/v1/audio/transcriptions", "Speech to text", form=AudioForm,
              answers={200: Transcription | VerboseTranscription}, streams=True,
              other_media=("text/plain", "application/x-subrip", "text/vtt"), tags=("audio",)),
    Operation("post", "/v1/audio/translations", "Speech to English text", form=AudioForm,
              answers={200: Transcription | VerboseTranscription}, streams=True,
              other_media=("text/plain", "application/x-subrip", "text/vtt"), tags=("audio",)),
    Operation("post", "/v1/images/generations", "Generate images", ImageGenerationRequest,
              answers={200: ImagesResponse}, streams=True, tags=("images",)),
    Operation("post", "/v1/images/edits", "Edit images", form=ImageEditForm,
              answers={200: ImagesResponse}, streams=True, tags=("images",)),
    Operation("get", "/v1/models", "Loaded models and the Hugging Face cache",
              answers={200: ModelCards}, tags=("models",)),
    Operation("get", "/v1/models/{model_id}", "One model", answers={200: ModelCard},
              tags=("models",)),
    Operation("delete", "/v1/models/{model_id}", "Delete a repo from the cache",
              answers={200: DeletedModel}, tags=("models",)),
    Operation("post", "/v1/models/{model_id}/load", "Load a catalog model",
              answers={200: ModelActionResponse}, tags=("models",)),
    Operation("post", "/v1/models/{model_id}/unload", "Unload a catalog model",
              answers={200: ModelActionResponse}, tags=("models",)),
    Operation("post", "/v1/admin/download-model", "Download a repo", DownloadRequest,
              answers={200: DownloadAnswer}, tags=("models",)),
    Operation("post", "/v1/admin/download-model-stream", "Download a repo, with progress",
              DownloadRequest, answers={}, streams=True, tags=("models",)),
    Operation("post", "/v1/admin/load-model", "Load a model", LoadRequest,
              answers={201: LoadAnswer, 202: LoadAnswer}, tags=("admin",)),
    Operation("delete", "/v1/admin/unload-model/{model_id}", "Unload a model",
              answers={200: UnloadAnswer}, tags=("admin",)),
    Operation("get", "/v1/admin/loaded-models", "Loaded models with memory",
              answers={200: LoadedModels}, tags=("admin",)),
    Operation("get", "/v1/queue/stats", "Queue statistics", answers={200: QueueStatsAnswer},
              tags=("admin",)),
    Operation("get", "/health", "Health", answers={200: Health, 503: Health}, tags=("status",)),
    Operation("get", "/health/ready", "Readiness", answers={200: Readiness, 503: Readiness},
              tags=("status",)),
    Operation("get", "/metrics", "Prometheus metrics", answers={},
              other_media=("text/plain",), tags=("status",)),
    Operation("get", "/", "The status page", answers={}, other_media=("text/html",),
              tags=("status",)),
    Operation("get", "/v1/admin/events", "Model snapshots each second, for the status page",
              answers={}, streams=True, tags=("status",)),
    Operation("get", "/v1/tools", "Built-in tools", answers={200: None}, tags=("tools",)),
    Operation("post", "/v1/tools/execute", "Run a built-in tool", ExecuteRequest,
              answers={200: ExecuteResponse}, tags=("tools",)),
    Operation("post", "/v1/rag/upload", "Index a PDF", form=UploadForm,
              answers={200: UploadResponse}, tags=("rag",)),
    Operation("get", "/v1/rag/documents", "Indexed PDFs", answers={200: DocumentList},
              tags=("rag",)),
    Operation("delete", "/v1/rag/documents/{file_id}", "Remove an indexed PDF",
              answers={200: Deleted}, tags=("rag",)),
    Operation("post", "/v1/rag/query", "Ask about the indexed PDFs", RagQueryRequest,
              answers={200: RagAnswer}, streams=True, tags=("rag",)),
    Operation("get", "/api/v1/vision/health", "Vision health",
              answers={200: VisionHealthResponse, 503: VisionHealthResponse}, tags=("vision",)),
    Operation("post", "/api/v1/vision/classify", "Classify an image", ImageClassifyRequest,
              answers={200: ImageClassifyResponse}, tags=("vision",)),
    Operation("post", "/api/v1/vision/classify/batch", "Classify images",
              BatchClassifyRequest, answers={200: BatchClassifyResponse}, tags=("vision",)),
    Operation("post", "/api/v1/vision/load", "Load the vision model", VisionLoadRequest,
              answers={200: VisionLoadResponse}, tags=("vision",)),
    Operation("post", "/api/v1/vision/unload", "Unload vision models",
              answers={200: VisionLoadResponse}, tags=("vision",)),
    Operation("get", "/api/model/status", "ForgeLLM: the model's status",
              answers={200: ForgeStatus}, tags=("forge",)),
    Operation("post", "/api/model/load", "ForgeLLM: start loading a model", ForgeLoadRequest,
              answers={200: ForgeLoadAnswer, 400: ForgeError}, tags=("forge",)),
    Operation("post", "/api/model/generate", "ForgeLLM: generate text", ForgeGenerateRequest,
              answers={200: ForgeGenerateAnswer, 400: ForgeError, 500: ForgeError},
              tags=("forge",)),
)  # fmt: skip
