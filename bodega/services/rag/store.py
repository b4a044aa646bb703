"""Indexed documents on disk: one folder per document under ``<data_dir>/rag``.

A folder holds ``meta.json``, ``chunks.json`` and ``index.faiss`` (a FAISS
inner-product index over unit vectors: cosine similarity). It is written in
full under a temporary name and renamed into place, so a reader sees a
complete document or none; a crash mid-upload leaves only a ``.tmp-<pid>-``
folder that the next start sweeps. Deleting renames the folder away first.

Blocking: callers run these functions in a worker thread.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import time
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt
import psutil

from bodega.errors import DocumentNotFound, InvalidRequest

from .chunking import Chunk

FILE_ID = re.compile(r"^rag-[0-9a-f]{8,32}$")
_TEMP = re.compile(r"^\.(?:tmp|trash)-(\d+)-")
META, CHUNKS, INDEX = "meta.json", "chunks.json", "index.faiss"

Matrix = npt.NDArray[np.float32]


class DocumentMeta(msgspec.Struct):
    """What ``GET /v1/rag/documents`` lists about one document."""

    file_id: str
    filename: str
    num_chunks: int
    num_pages: int
    size_bytes: int
    created_at: int
    embeddings_model: str
    dim: int
    status: str = "indexed"


class Hit(msgspec.Struct):
    """A retrieved chunk: its position in the document, page, score, text."""

    chunk: int
    page: int
    score: float
    text: str


def check_file_id(file_id: str) -> str:
    """``file_id`` if it is of our form (``rag-`` + hex), else a 400."""
    if not FILE_ID.match(file_id):
        raise InvalidRequest(
            f"file_id {file_id[:80]!r} is not a document id (rag- followed by hex digits)",
            param="file_id",
        )
    return file_id


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _unit_rows(vectors: Matrix) -> Matrix:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)


class DocumentStore:
    """The documents under ``root`` (``<data_dir>/rag``)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def sweep(self) -> list[str]:
        """Remove half-written and half-deleted folders of dead processes."""
        removed = []
        for entry in self.root.iterdir():
            match = _TEMP.match(entry.name)
            if match and not psutil.pid_exists(int(match.group(1))):
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry.name)
        return removed

    def new_file_id(self) -> str:
        """A fresh id no document has."""
        while True:
            file_id = f"rag-{secrets.token_hex(4)}"
            if not (self.root / file_id).exists():
                return file_id

    def save(
        self,
        file_id: str,
        meta: DocumentMeta,
        chunks: list[Chunk],
        vectors: Matrix,
        *,
        before_commit: Any = None,
    ) -> None:
        """Write a document atomically (``before_commit()`` runs just before
        the rename: tests use it to simulate a crash)."""
        import faiss

        check_file_id(file_id)
        temp = self.root / f".tmp-{os.getpid()}-{file_id}-{secrets.token_hex(3)}"
        temp.mkdir()
        try:
            index = faiss.IndexFlatIP(vectors.shape[1])
            index.add(_unit_rows(vectors))
            _write(temp / INDEX, faiss.serialize_index(index).tobytes())
            _write(temp / CHUNKS, msgspec.json.encode(chunks))
            _write(temp / META, msgspec.json.encode(meta))
            _fsync_dir(temp)
            if before_commit is not None:
                before_commit()
            os.rename(temp, self.root / file_id)
            _fsync_dir(self.root)
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise

    def _folder(self, file_id: str) -> Path:
        folder = self.root / check_file_id(file_id)
        if not (folder / META).is_file():
            raise DocumentNotFound(f"No indexed document has file_id {file_id!r}.", param="file_id")
        return folder

    def meta(self, file_id: str) -> DocumentMeta:
        """The metadata of one document, or a 404."""
        return msgspec.json.decode((self._folder(file_id) / META).read_bytes(), type=DocumentMeta)

    def documents(self) -> list[DocumentMeta]:
        """Every complete document, oldest first."""
        docs = []
        for entry in self.root.iterdir():
            if FILE_ID.match(entry.name) and (entry / META).is_file():
                try:
                    docs.append(msgspec.json.decode((entry / META).read_bytes(), type=DocumentMeta))
                except (OSError, msgspec.DecodeError, msgspec.ValidationError):
                    continue
        return sorted(docs, key=lambda d: (d.created_at, d.file_id))

    def search(self, file_id: str, query: Matrix, k: int) -> list[Hit]:
        """The ``k`` chunks most similar (cosine) to the query vector."""
        import faiss

        folder = self._folder(file_id)
        try:
            index = faiss.deserialize_index(np.fromfile(folder / INDEX, dtype=np.uint8))
            chunks = msgspec.json.decode((folder / CHUNKS).read_bytes(), type=list[Chunk])
        except FileNotFoundError:
            raise DocumentNotFound(
                f"No indexed document has file_id {file_id!r}.", param="file_id"
            ) from None
        if query.shape[1] != index.d:
            raise InvalidRequest(
                f"the query vector has {query.shape[1]} dimensions, the index {index.d}",
                param="file_id",
            )
        k = max(1, min(k, index.ntotal))
        scores, ids = index.search(_unit_rows(query), k)
        return [
            Hit(chunk=int(i), page=chunks[i].page, score=float(s), text=chunks[i].text)
            for s, i in zip(scores[0], ids[0], strict=True)
            if i >= 0
        ]

    def delete(self, file_id: str) -> DocumentMeta:
        """Remove a document (atomically renamed away, then deleted)."""
        meta = self.meta(file_id)
        trash = self.root / f".trash-{os.getpid()}-{file_id}-{secrets.token_hex(3)}"
        try:
            os.rename(self.root / file_id, trash)
        except FileNotFoundError:
            raise DocumentNotFound(
                f"No indexed document has file_id {file_id!r}.", param="file_id"
            ) from None
        shutil.rmtree(trash, ignore_errors=True)
        return meta


def now() -> int:
    """Seconds since the epoch, for ``created_at``."""
    return int(time.time())
