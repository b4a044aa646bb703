"""Upload (PDF -> chunks -> vectors -> index) and retrieval, off the event loop.

PDF parsing and FAISS run in worker threads; embeddings come from the
embeddings model's handler like any ``/v1/embeddings`` request.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import trio

from bodega.errors import ModelNotFound, ModelUnavailable, NoModelLoaded, UnprocessableContent
from bodega.registry.model import Model
from bodega.registry.registry import Registry
from bodega.services.embeddings import EmbeddingResult, Inputs, embed

from .chunking import Chunk, chunk_pages
from .config import RagSection
from .pdf import extract_pages
from .store import DocumentMeta, DocumentStore, Hit, Matrix, check_file_id, now

_UNSAFE = "/\\\x00\r\n"


def clean_filename(name: str | None) -> str:
    """The uploaded file's base name, without path parts or control characters."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(c for c in base if c not in _UNSAFE and c.isprintable()).strip()
    return base[:255] or "document.pdf"


def as_matrix(result: EmbeddingResult) -> Matrix:
    """The handler's little-endian float32 rows as a numpy matrix."""
    return np.frombuffer(result.data, dtype="<f4").reshape(result.rows, result.dim)


class RagService:
    """Indexes PDFs into ``store`` and retrieves from them."""

    def __init__(self, store: DocumentStore, config: RagSection, registry: Registry) -> None:
        self.store = store
        self.config = config
        self.registry = registry

    @classmethod
    def at(cls, data_dir: str, config: RagSection, registry: Registry) -> RagService:
        """The service over ``<data_dir>/rag`` (swept of half-written folders)."""
        store = DocumentStore(Path(data_dir) / "rag")
        store.sweep()
        return cls(store, config, registry)

    def _embeddings_model(self, model_id: str) -> Model:
        try:
            return self.registry.resolve(model_id, kinds=("embeddings",))
        except (ModelNotFound, NoModelLoaded):
            raise ModelUnavailable(
                f"Document Q&A needs the embeddings model {model_id!r}, which is not loaded "
                "(load it, or set rag.embeddings_model)."
            ) from None

    async def _embed(self, model_id: str, texts: list[str]) -> Matrix:
        model = self._embeddings_model(model_id)
        parts = []
        step = self.config.embed_batch
        for start in range(0, len(texts), step):
            inputs = Inputs(texts=texts[start : start + step], token_ids=[])
            parts.append(as_matrix(await embed(model, inputs, truncate=True)))
        return np.concatenate(parts).astype(np.float32)

    async def upload(self, filename: str | None, data: bytes) -> DocumentMeta:
        """Index one PDF; returns its metadata once it is on disk."""
        model_id = self.config.embeddings_model
        self._embeddings_model(model_id)  # fail fast (503) before parsing
        pages = await trio.to_thread.run_sync(extract_pages, data, self.config.max_pages)
        chunks: list[Chunk] = chunk_pages(pages, self.config.chunk_size, self.config.chunk_overlap)
        if not chunks:
            raise UnprocessableContent(
                "The PDF has no extractable text (a scanned document needs OCR first).",
                param="file",
            )
        vectors = await self._embed(model_id, [c.text for c in chunks])
        file_id = self.store.new_file_id()
        meta = DocumentMeta(
            file_id=file_id,
            filename=clean_filename(filename),
            num_chunks=len(chunks),
            num_pages=len(pages),
            size_bytes=len(data),
            created_at=now(),
            embeddings_model=model_id,
            dim=int(vectors.shape[1]),
        )
        await trio.to_thread.run_sync(self.store.save, file_id, meta, chunks, vectors)
        return meta

    async def retrieve(
        self, file_id: str, query: str, top_k: int
    ) -> tuple[DocumentMeta, list[Hit]]:
        """The document's metadata and its ``top_k`` chunks closest to ``query``."""
        check_file_id(file_id)
        meta = await trio.to_thread.run_sync(self.store.meta, file_id)
        vector = await self._embed(meta.embeddings_model, [query])
        hits = await trio.to_thread.run_sync(self.store.search, file_id, vector, top_k)
        return meta, hits

    async def documents(self) -> list[DocumentMeta]:
        """Every indexed document."""
        return await trio.to_thread.run_sync(self.store.documents)

    async def delete(self, file_id: str) -> DocumentMeta:
        """Remove one document."""
        check_file_id(file_id)
        return await trio.to_thread.run_sync(self.store.delete, file_id)
