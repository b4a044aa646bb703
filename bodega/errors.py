"""The error tree, and the one place that maps errors to HTTP.

Everything a client can get wrong or a model can fail at is a ``BodegaError``
subclass carrying its HTTP status and OpenAI error ``type``/``code``. Routes
raise them; ``app.py`` renders them as ``{"error": {message, type, param, code}}``.
A handler's ``Failed`` frame becomes one of them through ``error_from_failed``,
the one table from ``ErrorKind`` to error.
"""

from __future__ import annotations

import re

import msgspec

from ipc.messages import ErrorKind, Failed


class BodegaError(Exception):
    """Base of every error a client sees; never shows a traceback."""

    status = 500
    type = "server_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code

    def headers(self) -> dict[str, str]:
        """Extra response headers (e.g. Retry-After)."""
        return {}


class InvalidRequest(BodegaError):
    """The request is malformed or asks for something impossible."""

    status = 400
    type = "invalid_request_error"


class ContextLengthExceeded(InvalidRequest):
    """The prompt does not fit the model's context."""

    code = "context_length_exceeded"


class ModelNotFound(BodegaError):
    """No loaded model has that id."""

    status = 404
    type = "invalid_request_error"
    code = "model_not_found"


class NotFound(BodegaError):
    """The URL names nothing."""

    status = 404
    type = "invalid_request_error"
    code = "not_found"


class DocumentNotFound(BodegaError):
    """No indexed RAG document has that file_id."""

    status = 404
    type = "invalid_request_error"
    code = "document_not_found"


class MethodNotAllowed(BodegaError):
    """The URL exists but not with this method."""

    status = 405
    type = "invalid_request_error"
    code = "method_not_allowed"


class ModelAlreadyLoaded(BodegaError):
    """``load-model`` with an id that is taken."""

    status = 409
    type = "invalid_request_error"
    code = "model_already_loaded"


class PayloadTooLarge(BodegaError):
    """The request body is over the limit."""

    status = 413
    type = "invalid_request_error"
    code = "payload_too_large"

    def headers(self) -> dict[str, str]:
        """The unread rest of the body makes the connection unusable."""
        return {"Connection": "close"}


class UnsupportedMediaType(BodegaError):
    """The body is not of a type the endpoint takes."""

    status = 415
    type = "invalid_request_error"
    code = "unsupported_media_type"


class UnprocessableContent(BodegaError):
    """The body has the right type but its content cannot be used
    (an encrypted or corrupt PDF, a PDF without text)."""

    status = 422
    type = "invalid_request_error"
    code = "unprocessable_content"


class QueueFull(BodegaError):
    """Every slot and queue place of the model is taken."""

    status = 429
    type = "rate_limit_error"
    code = "queue_full"

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        """Tell the client when a slot is likely free."""
        return {"Retry-After": str(self.retry_after)}


class ModelLoadFailed(BodegaError):
    """The handler could not load the model."""

    status = 400
    type = "invalid_request_error"
    code = "model_load_failed"


class ModelFilesNotFound(BodegaError):
    """The model's files are not on this machine (e.g. not in the HF cache)."""

    status = 404
    type = "invalid_request_error"
    code = "model_files_not_found"


class HandlerFailed(BodegaError):
    """The model's handler crashed or broke the protocol mid-request."""

    status = 500
    type = "server_error"
    code = "model_failed"


class NoModelLoaded(BodegaError):
    """Nothing is loaded that could answer."""

    status = 503
    type = "server_error"
    code = "no_model_loaded"


class ModelUnavailable(BodegaError):
    """The model exists but is not running (loading, failed, stopping)."""

    status = 503
    type = "server_error"
    code = "model_unavailable"


class InsufficientMemory(BodegaError):
    """The model does not fit the memory budget, even after unloading idle models."""

    status = 507
    type = "server_error"
    code = "insufficient_memory"


class ModelLimitReached(ModelUnavailable):
    """``max_loaded_models`` are loaded and none may be unloaded to make room."""

    code = "model_limit_reached"


class ModelRestarting(ModelUnavailable):
    """The model's handler is restarting and no more requests can wait for it."""

    code = "model_restarting"

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        """Tell the client when the restart is likely done."""
        return {"Retry-After": str(self.retry_after)}


class ToolNotFound(BodegaError):
    """``/v1/tools/execute`` names no built-in tool."""

    status = 404
    type = "invalid_request_error"
    code = "tool_not_found"


class ToolProviderFailed(BodegaError):
    """A tool's upstream provider failed: unreachable, slow, non-2xx, oversize, unparsable."""

    status = 502
    type = "server_error"
    code = "tool_provider_failed"


class ExecutionTimeout(BodegaError):
    """The work took longer than its endpoint's execution timeout
    (``runtime.embedding_timeout_sec``, ``audio_timeout_sec``); it was cancelled."""

    status = 504
    type = "timeout_error"
    code = "execution_timeout"


class QueueTimeout(BodegaError):
    """The request waited longer than the model's ``queue_timeout``."""

    status = 504
    type = "timeout_error"
    code = "queue_timeout"


# What each kind of handler failure is, over HTTP; the message is the handler's.
_FAILED_KINDS: dict[ErrorKind, type[BodegaError]] = {
    "invalid_request": InvalidRequest,
    "context_length_exceeded": ContextLengthExceeded,
    "too_large": PayloadTooLarge,
    "not_found": ModelFilesNotFound,
    "load_error": ModelLoadFailed,
    "protocol_error": HandlerFailed,
    "internal": HandlerFailed,
}


def error_from_failed(failed: Failed) -> BodegaError:
    """The HTTP-facing error for a handler's ``Failed`` frame."""
    error = _FAILED_KINDS[failed.kind]
    if error is HandlerFailed:
        return HandlerFailed(f"The model failed: {failed.message}")
    return error(failed.message, param=failed.param)


def load_error_from_failed(failed: Failed, model_id: str) -> BodegaError:
    """The error of a load that the handler answered with ``Failed``."""
    error = ModelFilesNotFound if failed.kind == "not_found" else ModelLoadFailed
    return error(f"could not load model {model_id!r}: {failed.message}")


_PATH = re.compile(r"at `\$\.?([^`]*)`")


def from_validation_error(exc: msgspec.ValidationError | msgspec.DecodeError) -> InvalidRequest:
    """Turn a msgspec decode error into a 400 that names the field."""
    text = str(exc)
    match = _PATH.search(text)
    param = match.group(1) if match else None
    if param is not None:
        param = param.replace("[...]", "")  # a value of a mapping: name the mapping
    if isinstance(exc, msgspec.ValidationError):
        message = text.replace("`$.", "`") if param else text
        named = re.match(r"Object (missing required|contains unknown) field `(\w+)`", text)
        if named:
            prefix = f"{param}." if param else ""
            param = prefix + named.group(2)
            what = "Missing required" if named.group(1).startswith("missing") else "Unknown"
            message = f"{what} field `{param}`"
        return InvalidRequest(f"Invalid request: {message}", param=param)
    return InvalidRequest(f"Request body is not valid JSON: {text}", code="invalid_json")


def error_body(exc: BodegaError) -> dict[str, dict[str, str | None]]:
    """The OpenAI error body for ``exc``."""
    return {
        "error": {
            "message": exc.message,
            "type": exc.type,
            "param": exc.param,
            "code": exc.code,
        }
    }
