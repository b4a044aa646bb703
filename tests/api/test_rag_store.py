"""RAG pieces without a server: PDF text, chunking, the on-disk store and
its atomic writes (a real crash in a subprocess)."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bodega.errors import (
    DocumentNotFound,
    InvalidRequest,
    UnprocessableContent,
    UnsupportedMediaType,
)
from bodega.services.rag.chunking import Chunk, chunk_pages, split_text
from bodega.services.rag.pdf import extract_pages
from bodega.services.rag.store import DocumentMeta, DocumentStore, check_file_id
from bodega.settings import ConfigError, build_settings
from tests.api.pdfs import FACTS, drawing_only_pdf, encrypted_pdf, facts_pdf

ROOT = Path(__file__).resolve().parents[2]


def test_extract_pages_keeps_page_order() -> None:
    pages = extract_pages(facts_pdf(), max_pages=10)
    assert len(pages) == 3
    marks = {1: "1887", 2: "7391", 3: "6:45"}
    for number, mark in marks.items():
        assert mark in FACTS[number]
        assert [mark in text for text in pages] == [n == number for n in (1, 2, 3)]


def test_extract_pages_refuses_bad_files() -> None:
    with pytest.raises(UnsupportedMediaType):
        extract_pages(b"just some text", max_pages=10)
    with pytest.raises(UnprocessableContent, match="encrypted"):
        extract_pages(encrypted_pdf(), max_pages=10)
    with pytest.raises(UnprocessableContent, match="corrupt"):
        extract_pages(b"%PDF-1.4\n" + bytes(range(256)) * 4, max_pages=10)
    with pytest.raises(UnprocessableContent, match="pages"):
        extract_pages(facts_pdf(), max_pages=2)
    assert extract_pages(drawing_only_pdf(), max_pages=10) == [""]


def test_split_text_overlaps_and_covers_everything() -> None:
    words = [f"w{i:03d}" for i in range(300)]
    text = " ".join(words)
    pieces = split_text(text, size=200, overlap=50)
    assert all(len(p) <= 200 for p in pieces)
    seen = " ".join(pieces).split()
    assert set(seen) == set(words)  # nothing lost
    for left, right in itertools.pairwise(pieces):
        assert left.split()[-1] in right.split()[:15]  # consecutive pieces overlap
    assert split_text("short", size=200, overlap=50) == ["short"]
    assert split_text("", size=200, overlap=50) == []
    with pytest.raises(ValueError):
        split_text(text, size=100, overlap=100)


def test_chunk_pages_remember_pages() -> None:
    chunks = chunk_pages(["alpha beta", "", "gamma   delta\n\n\n\nepsilon"], 100, 10)
    assert chunks == [Chunk("alpha beta", 1), Chunk("gamma delta\n\nepsilon", 3)]


def _meta(file_id: str) -> DocumentMeta:
    return DocumentMeta(
        file_id=file_id,
        filename="x.pdf",
        num_chunks=3,
        num_pages=1,
        size_bytes=1,
        created_at=1,
        embeddings_model="m",
        dim=4,
    )


def _vectors() -> np.ndarray:
    return np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0.6, 0.8, 0, 0]], dtype=np.float32)


def test_store_save_search_delete(tmp_path: Path) -> None:
    store = DocumentStore(tmp_path)
    file_id = store.new_file_id()
    chunks = [Chunk("a", 1), Chunk("b", 2), Chunk("ab", 2)]
    store.save(file_id, _meta(file_id), chunks, _vectors() * 3)  # stored as unit vectors
    hits = store.search(file_id, np.array([[0, 2, 0, 0]], dtype=np.float32), 2)
    assert [(h.chunk, h.page, h.text) for h in hits] == [(1, 2, "b"), (2, 2, "ab")]
    assert hits[0].score == pytest.approx(1.0) and hits[1].score == pytest.approx(0.8)
    assert [d.file_id for d in DocumentStore(tmp_path).documents()] == [file_id]
    store.delete(file_id)
    assert store.documents() == []
    with pytest.raises(DocumentNotFound):
        store.search(file_id, _vectors()[:1], 1)


def test_file_ids_of_other_forms_are_refused(tmp_path: Path) -> None:
    store = DocumentStore(tmp_path)
    for bad in ("../etc/passwd", "rag-../../x", "rag-XYZ12345", "", "rag-1234"):
        with pytest.raises(InvalidRequest):
            check_file_id(bad)
        with pytest.raises(InvalidRequest):
            store.meta(bad)
    with pytest.raises(DocumentNotFound):
        store.meta("rag-0123abcd")


def test_failed_save_leaves_nothing(tmp_path: Path) -> None:
    store = DocumentStore(tmp_path)

    def fail() -> None:
        raise OSError("disk full")

    with pytest.raises(OSError):
        store.save(
            "rag-0000aaaa",
            _meta("rag-0000aaaa"),
            [Chunk("a", 1)] * 3,
            _vectors(),
            before_commit=fail,
        )
    assert list(tmp_path.iterdir()) == []


def test_crash_mid_save_never_shows_a_half_document(tmp_path: Path) -> None:
    code = (
        "import os, numpy as np\n"
        "from pathlib import Path\n"
        "from bodega.services.rag.chunking import Chunk\n"
        "from bodega.services.rag.store import DocumentMeta, DocumentStore\n"
        f"store = DocumentStore(Path({str(tmp_path)!r}))\n"
        "meta = DocumentMeta(file_id='rag-0000bbbb', filename='x.pdf', num_chunks=1,"
        " num_pages=1, size_bytes=1, created_at=1, embeddings_model='m', dim=4)\n"
        "store.save('rag-0000bbbb', meta, [Chunk('a', 1)], np.ones((1, 4), dtype=np.float32),"
        " before_commit=lambda: os._exit(3))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, timeout=60)
    assert done.returncode == 3  # died just before the rename
    leftovers = [p.name for p in tmp_path.iterdir()]
    assert len(leftovers) == 1 and leftovers[0].startswith(".tmp-")
    assert (tmp_path / leftovers[0] / "meta.json").is_file()  # fully written, never renamed
    store = DocumentStore(tmp_path)
    assert store.documents() == []
    with pytest.raises(DocumentNotFound):
        store.meta("rag-0000bbbb")
    assert store.sweep() == leftovers  # its writer is dead
    assert list(tmp_path.iterdir()) == []


def test_rag_config_section_and_data_dir(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("server:\n  data_dir: /srv/bodega\nrag:\n  chunk_size: 500\n  top_k: 6\n")
    settings = build_settings(config_path=str(good))
    assert settings.rag.chunk_size == 500 and settings.rag.top_k == 6
    assert settings.server.data_dir == "/srv/bodega"
    flag = build_settings(config_path=str(good), data_dir=str(tmp_path))
    assert flag.server.data_dir == str(tmp_path)  # --data-dir wins over the file
    for body, key in (
        ("rag:\n  chunk_size: 500\n  chunk_overlap: 500\n", "chunk_overlap"),
        ("rag:\n  chunk_sise: 500\n", "chunk_sise"),
    ):
        bad = tmp_path / "bad.yaml"
        bad.write_text(body)
        with pytest.raises(ConfigError, match=key):
            build_settings(config_path=str(bad))
