"""The ``rag:`` section of ``config.yaml``."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta


class RagSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """How documents are chunked, embedded and limited."""

    embeddings_model: str = "all-minilm-l6-v2"
    chunk_size: Annotated[int, Meta(ge=100, le=20_000)] = 800  # characters
    chunk_overlap: Annotated[int, Meta(ge=0, le=10_000)] = 150  # characters
    max_upload_bytes: Annotated[int, Meta(ge=1024)] = 20 * 1024 * 1024
    max_pages: Annotated[int, Meta(ge=1)] = 2000
    top_k: Annotated[int, Meta(ge=1, le=50)] = 4
    # The answer's length when a query does not say (max_tokens).
    max_tokens: Annotated[int, Meta(ge=1)] = 512
    # Chunks per Embed request while indexing.
    embed_batch: Annotated[int, Meta(ge=1, le=2048)] = 256

    def __post_init__(self) -> None:
        if self.chunk_overlap >= self.chunk_size:
            raise msgspec.ValidationError("rag.chunk_overlap must be smaller than rag.chunk_size")
