"""catalog.engines: which engine serves which model_type, and what it honours."""

from __future__ import annotations

import typing
from pathlib import Path

import msgspec
import pytest

from catalog.engines import (
    ENGINE_SPECIFIC,
    SUPPORTED,
    EngineName,
    ModelType,
    resolve_engine,
)
from catalog.files import find_mmproj
from catalog.options import LoadOptions


def test_the_table_names_known_types_engines_and_options() -> None:
    model_types = set(typing.get_args(ModelType))
    engines = set(typing.get_args(EngineName)) - {"auto"}
    fields = {f.name for f in msgspec.structs.fields(LoadOptions)}
    assert set(SUPPORTED) <= model_types
    assert set(ENGINE_SPECIFIC) <= fields
    for by_engine in SUPPORTED.values():
        assert set(by_engine) <= engines
        for honoured in by_engine.values():
            assert honoured <= set(ENGINE_SPECIFIC)
    # Every engine name serves something.
    assert engines == {e for by_engine in SUPPORTED.values() for e in by_engine}


def test_auto_picks_by_files(tmp_path: Path) -> None:
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF\x03\x00\x00\x00")
    mlx_whisper = tmp_path / "w"
    mlx_whisper.mkdir()
    (mlx_whisper / "config.json").write_text("{}")
    (mlx_whisper / "weights.npz").write_bytes(b"")
    assert resolve_engine("lm", "auto", str(gguf)) == "llamacpp"
    assert resolve_engine("lm", "auto", str(tmp_path)) == "mlx"
    assert resolve_engine("lm", "auto", "mlx-community/Qwen3-0.6B-4bit") == "mlx"
    assert resolve_engine("whisper", "auto", str(mlx_whisper)) == "mlx"
    assert resolve_engine("whisper", "auto", str(tmp_path)) == "faster-whisper"
    assert resolve_engine("embeddings", "auto", str(gguf)) == "sentence-transformers"
    assert resolve_engine("rerank", "auto", str(gguf)) == "cross-encoder"


def test_an_engine_named_is_kept() -> None:
    assert resolve_engine("lm", "mlx", "x.gguf") == "mlx"
    assert resolve_engine("rerank", "bi-encoder", "x") == "bi-encoder"


def test_multimodal_picks_llamacpp_for_gguf_and_mlx_for_folders(tmp_path: Path) -> None:
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF" + bytes(20))
    assert resolve_engine("multimodal", "auto", str(model)) == "llamacpp"
    assert resolve_engine("multimodal", "auto", str(tmp_path)) == "mlx"


def test_find_mmproj_beside_the_model(tmp_path: Path) -> None:
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF" + bytes(20))
    assert find_mmproj(model) is None
    (tmp_path / "mmproj-notes.gguf").write_text("not a GGUF file")
    assert find_mmproj(model) is None
    projector = tmp_path / "mmproj-model-f16.gguf"
    projector.write_bytes(b"GGUF" + bytes(20))
    assert find_mmproj(model) == projector


@pytest.mark.parametrize("model_type", ["image-generation", "image-edit"])
def test_image_models_pick_diffusers_for_pipeline_folders(model_type: str, tmp_path: Path) -> None:
    assert resolve_engine(model_type, "auto", str(tmp_path)) == "mflux"
    (tmp_path / "model_index.json").write_text("{}")
    assert resolve_engine(model_type, "auto", str(tmp_path)) == "diffusers"
