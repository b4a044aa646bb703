"""``/v1/rag/*``: upload and index PDFs, ask questions about them.

A query retrieves first and starts the generation before answering, so that
anything that fails early (unknown document, no chat model, full queue) is
a proper HTTP status even for streams; a failure after streaming began is an
SSE error event followed by ``data: [DONE]``, as for chat completions.
"""

from __future__ import annotations

from typing import cast

import msgspec
from quart import Blueprint, Response, current_app, request

from bodega.errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType
from bodega.openai.rag import Deleted, DocumentList, RagAnswer, RagQueryRequest, UploadResponse
from bodega.registry.registry import TEXT_MODELS
from bodega.services import text
from bodega.services.rag.prompt import grounded_request
from bodega.services.rag.service import RagService
from bodega.services.sampling import with_defaults
from bodega.settings import Settings, default_data_dir

from .common import decode_json, json_response, limits, registry, sse_response

blueprint = Blueprint("rag", __name__)


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
    limit = limits().rag_upload_bytes
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


@blueprint.post("/v1/rag/query")
async def query() -> Response:
    """Answer a question about an indexed document, grounded in its chunks."""
    body = await decode_json(RagQueryRequest)
    service = rag()
    chat_model = await registry().find(body.model, kinds=TEXT_MODELS)
    meta, hits = await service.retrieve(
        body.file_id, body.query, body.top_k or service.config.top_k
    )
    message = grounded_request(
        meta.filename,
        body.query,
        hits,
        max_tokens=body.max_tokens,
        temperature=body.temperature,
        seed=body.seed,
    )
    message = with_defaults(message, body, chat_model.spec.defaults)
    if message.max_tokens is None:
        message = msgspec.structs.replace(message, max_tokens=service.config.max_tokens)
    if not body.stream:
        completion = await text.chat_answer(chat_model, message, 1, logprobs=False)
        return json_response(
            RagAnswer(
                **msgspec.structs.asdict(completion),
                file_id=meta.file_id,
                answer=completion.choices[0].message.content or "",
                sources=hits,
            )
        )
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    events = await text.chat_stream(
        chat_model, message, 1, logprobs=False, include_usage=include_usage
    )
    return sse_response(events)
