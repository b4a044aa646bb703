"""Embeddings: check inputs, run an ``Embed`` on the model's handler, read
the vectors back (from shared memory when large).

Vectors travel as little-endian float32 rows; ``vectors_as_floats`` and
``row_bytes`` turn them into what the API sends without numpy.
"""

from __future__ import annotations

import sys
from array import array
from dataclasses import dataclass
from typing import Any

from bodega.errors import HandlerFailed, InvalidRequest
from bodega.openai.embeddings import MAX_INPUTS, EmbeddingType
from bodega.registry.model import Model
from ipc import shm
from ipc.messages import Embed, Embeddings, ShmRef

# The most text (characters) or token ids one request may carry to a handler:
# well inside an IPC frame, far beyond what any embeddings model reads.
MAX_TOTAL_INPUT = 8_000_000


@dataclass
class Inputs:
    """A request's inputs: texts, or token-id lists (exactly one is set)."""

    texts: list[str]
    token_ids: list[list[int]]

    def __len__(self) -> int:
        return len(self.texts) or len(self.token_ids)


@dataclass
class EmbeddingResult:
    """What the handler answered: ``rows`` x ``dim`` little-endian float32."""

    rows: int
    dim: int
    data: bytes
    counts: list[int]
    sparse: list[dict[int, float]] | None
    prompt_tokens: int


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_input(value: str | list[Any]) -> Inputs:
    """OpenAI ``input``: a string, strings, token ids, or token-id lists."""
    if isinstance(value, str):
        check_size([value], "input")
        return Inputs(texts=[value], token_ids=[])
    if not value:
        raise InvalidRequest("input must not be empty", param="input")
    first = value[0]
    if _is_int(first):  # one input given as token ids
        _check_ids(value, "input")
        check_size([value], "input")
        return Inputs(texts=[], token_ids=[list(value)])
    if len(value) > MAX_INPUTS:
        raise InvalidRequest(
            f"input holds {len(value)} items, more than the {MAX_INPUTS} allowed", param="input"
        )
    if isinstance(first, str):
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise InvalidRequest(
                    "input must be all strings or all token ids", param=f"input[{i}]"
                )
        check_size(value, "input")
        return Inputs(texts=list(value), token_ids=[])
    if isinstance(first, list):
        for i, item in enumerate(value):
            if not isinstance(item, list) or not item:
                raise InvalidRequest(
                    "each token-id list must be a non-empty list of integers",
                    param=f"input[{i}]",
                )
            _check_ids(item, f"input[{i}]")
        check_size(value, "input")
        return Inputs(texts=[], token_ids=[list(item) for item in value])
    raise InvalidRequest(
        "input must be a string, a list of strings, a list of token ids or a list of "
        "token-id lists",
        param="input[0]",
    )


def check_size(items: list[Any], param: str) -> None:
    """A 400 when ``items`` (texts or id lists) add up to more than
    ``MAX_TOTAL_INPUT`` characters or ids."""
    total = sum(len(item) for item in items)
    if total > MAX_TOTAL_INPUT:
        raise InvalidRequest(
            f"{param} adds up to {total} characters or tokens, more than the "
            f"{MAX_TOTAL_INPUT} one request may carry; split it",
            param=param,
        )


def _check_ids(ids: list[Any], param: str) -> None:
    for j, token in enumerate(ids):
        if not _is_int(token) or token < 0:
            raise InvalidRequest("token ids must be non-negative integers", param=f"{param}[{j}]")


async def read_payload(model: Model, payload: bytes | ShmRef) -> bytes:
    """The bytes of a handler payload; a shared-memory one is released."""
    if not isinstance(payload, ShmRef):
        return payload
    try:
        return shm.read(payload)
    except shm.ShmError as exc:
        raise HandlerFailed(f"The model's answer was lost: {exc}") from None
    finally:
        await model.handler.release_shm(payload)


async def embed(
    model: Model,
    inputs: Inputs,
    *,
    truncate: bool = False,
    dimensions: int | None = None,
    embedding_type: EmbeddingType = "dense",
    return_sparse: bool = False,
) -> EmbeddingResult:
    """Embed ``inputs`` on ``model``, an embeddings model (admission, handler, errors)."""

    message = Embed(
        req_id=0,
        texts=inputs.texts,
        token_ids=inputs.token_ids,
        truncate=truncate,
        dimensions=dimensions,
        embedding_type=embedding_type,
        return_sparse=return_sparse,
    )
    frame = await model.call(message, expect=Embeddings)
    data = await read_payload(model, frame.vectors)
    if len(data) != frame.rows * frame.dim * 4:
        raise HandlerFailed("The model answered a malformed embedding matrix.")
    return EmbeddingResult(
        rows=frame.rows,
        dim=frame.dim,
        data=data,
        counts=frame.counts,
        sparse=frame.sparse,
        prompt_tokens=frame.prompt_tokens,
    )


def vectors_as_floats(result: EmbeddingResult) -> list[list[float]]:
    """The rows of ``result`` as Python floats."""
    values = array("f")
    values.frombytes(result.data)
    if sys.byteorder == "big":
        values.byteswap()
    flat = values.tolist()
    dim = result.dim
    return [flat[i * dim : (i + 1) * dim] for i in range(result.rows)]


def row_bytes(result: EmbeddingResult, row: int, count: int = 1) -> bytes:
    """``count`` rows starting at ``row``, as little-endian float32 bytes."""
    size = result.dim * 4
    return result.data[row * size : (row + count) * size]
