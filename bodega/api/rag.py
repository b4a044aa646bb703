"""``/v1/rag/*``: upload and index PDFs, ask questions about them.

A query retrieves first and starts the generation before answering, so that
anything that fails early (unknown document, no chat model, full queue) is
a proper HTTP status even for streams; a failure after streaming began is an
SSE error event followed by ``data: [DONE]``, as for chat completions.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import cast

from quart import Blueprint, Response, current_app, request

from bodega.errors import (
    BodegaError,
    HandlerFailed,
    InvalidRequest,
    PayloadTooLarge,
    UnsupportedMediaType,
    error_body,
)
from bodega.openai import sse
from bodega.openai.rag import (
    Choice,
    Chunk,
    ChunkChoice,
    Deleted,
    Delta,
    DocumentList,
    Message,
    RagAnswer,
    RagQueryRequest,
    UploadResponse,
    Usage,
)
from bodega.services.generation import generate
from bodega.services.rag.prompt import grounded_messages
from bodega.services.rag.service import RagService
from bodega.settings import Settings, default_data_dir
from ipc.messages import Delta as DeltaFrame
from ipc.messages import Finished, Sampling

from .common import decode_json, json_response, registry, sse_response

blueprint = Blueprint("rag", __name__)

Frames = AsyncGenerator[DeltaFrame | Finished, None]


def rag() -> RagService:
    """The app's RAG service, made on first use from its settings."""
    service = current_app.extensions.get("bodega.rag")
    if service is None:
        settings = cast(Settings, current_app.extensions["bodega.settings"])
        data_dir = settings.server.data_dir or default_data_dir()
        service = RagService.at(data_dir, settings.rag, registry())
        current_app.extensions["bodega.rag"] = service
    return cast(RagService, service)


@blueprint.post("/v1/rag/upload")
async def upload() -> Response:
    """Index the uploaded PDF (multipart field ``file``)."""
    service = rag()
    limit = service.config.max_upload_bytes
    if request.mimetype != "multipart/form-data":
        # Read (bounded by max_body_bytes) what was sent, so that the
        # connection stays usable for the client's next request.
        await request.get_data(cache=False)
        raise UnsupportedMediaType(
            "Upload the PDF as multipart/form-data with a field named file.", param="file"
        )
    # The multipart envelope adds a little to the file itself.
    if request.content_length is not None and request.content_length > limit + 64 * 1024:
        raise PayloadTooLarge(f"The upload is larger than the {limit} bytes allowed.")
    files = await request.files
    upload = files.get("file")
    if upload is None:
        raise InvalidRequest("The form needs a field named file holding the PDF.", param="file")
    data = upload.read()
    if len(data) > limit:
        raise PayloadTooLarge(f"The file is larger than the {limit} bytes allowed.")
    if not data:
        raise InvalidRequest("The uploaded file is empty.", param="file")
    meta = await service.upload(upload.filename, data)
    return json_response(
        UploadResponse(file_id=meta.file_id, filename=meta.filename, num_chunks=meta.num_chunks)
    )


@blueprint.get("/v1/rag/documents")
async def documents() -> Response:
    """Every indexed document."""
    return json_response(DocumentList(data=await rag().documents()))


@blueprint.delete("/v1/rag/documents/<path:file_id>")
async def delete(file_id: str) -> Response:
    """Remove an indexed document."""
    meta = await rag().delete(file_id)
    return json_response(Deleted(file_id=meta.file_id))


async def _first(frames: Frames) -> DeltaFrame | Finished:
    try:
        return await frames.__anext__()
    except StopAsyncIteration:
        raise HandlerFailed("The model ended the request without an answer.") from None
    except BaseException:
        await frames.aclose()
        raise


def _usage(finished: Finished) -> Usage:
    u = finished.usage
    return Usage(
        prompt_tokens=u.prompt_tokens,
        completion_tokens=u.completion_tokens,
        total_tokens=u.prompt_tokens + u.completion_tokens,
    )


def _reason(finished: Finished) -> str:
    return "length" if finished.reason == "length" else "stop"


@blueprint.post("/v1/rag/query")
async def query() -> Response:
    """Answer a question about an indexed document, grounded in its chunks."""
    body = await decode_json(RagQueryRequest)
    service = rag()
    chat_model = registry().resolve(body.model)
    if chat_model.spec.model_type not in ("lm", "multimodal"):
        raise InvalidRequest(
            f"model {chat_model.id!r} is not a language model; RAG answers need one",
            param="model",
        )
    meta, hits = await service.retrieve(
        body.file_id, body.query, body.top_k or service.config.top_k
    )
    messages = grounded_messages(meta.filename, body.query, hits)
    sampling = Sampling(temperature=body.temperature, seed=body.seed)
    frames = generate(
        chat_model,
        messages=messages,
        max_tokens=body.max_tokens or service.config.max_tokens,
        sampling=sampling,
    )
    first = await _first(frames)
    answer_id, created, name = f"chatcmpl-{secrets.token_hex(12)}", int(time.time()), chat_model.id

    if not body.stream:
        parts: list[str] = []
        frame = first
        async with aclosing(frames):
            while isinstance(frame, DeltaFrame):
                parts.append(frame.text)
                frame = await frames.__anext__()
        text = "".join(parts)
        return json_response(
            RagAnswer(
                id=answer_id,
                created=created,
                model=name,
                choices=[
                    Choice(
                        index=0, message=Message("assistant", text), finish_reason=_reason(frame)
                    )
                ],
                usage=_usage(frame),
                file_id=meta.file_id,
                answer=text,
                sources=hits,
            )
        )

    include_usage = bool(body.stream_options and body.stream_options.include_usage)

    def chunk(delta: Delta, reason: str | None = None, usage: Usage | None = None) -> bytes:
        choices = [] if usage else [ChunkChoice(index=0, delta=delta, finish_reason=reason)]
        return sse.event(
            Chunk(id=answer_id, created=created, model=name, choices=choices, usage=usage)
        )

    async def events() -> AsyncGenerator[bytes, None]:
        yield chunk(Delta(role="assistant", content=""))
        async with aclosing(frames):
            frame = first
            try:
                while isinstance(frame, DeltaFrame):
                    if frame.text:
                        yield chunk(Delta(content=frame.text))
                    frame = await frames.__anext__()
                yield chunk(Delta(), _reason(frame))
                if include_usage:
                    yield chunk(Delta(), usage=_usage(frame))
            except BodegaError as exc:
                yield sse.event(error_body(exc))
        yield sse.DONE

    return sse_response(events())
