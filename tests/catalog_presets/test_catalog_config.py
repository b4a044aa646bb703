"""Parsing the catalog and presets, the INFERENCE_* and Simple Inference
Server variables, and a catalog entry as a ModelSpec."""

from __future__ import annotations

from pathlib import Path

import pytest

from bodega.catalog_presets.config import (
    CatalogSection,
    alias_environment,
    catalog_from,
    catalog_with_env,
)
from bodega.catalog_presets.models import entry_spec, preset_specs
from bodega.runtime_config import RuntimeSection, runtime_with_env
from catalog.devices import parse_device

CATALOG = """
models:
  - id: phi-4
    file: phi-4.gguf
    size: 8.4
    ctx: 4096
    quantization: Q4_K_M
    roles: [primary, coder]
    gpu_layers: 35
  - id: tiny
    file: /abs/tiny.gguf
    roles: [fast]
"""


def write(folder: Path) -> None:
    (folder / "models.yaml").write_text(CATALOG)
    (folder / "presets.yaml").write_text("presets:\n  D3:\n    models: [phi-4, tiny]\n")


def test_the_config_dir_variable_finds_both_files_and_the_preset(tmp_path: Path) -> None:
    write(tmp_path)
    env = {"INFERENCE_CONFIG_DIR": str(tmp_path), "INFERENCE_DEFAULT_PRESET": "D3",
           "INFERENCE_MODELS_DIR": "/models"}  # fmt: skip
    catalog = catalog_from(CatalogSection(), env, None)
    assert catalog is not None
    phi = catalog.entries["phi-4"]
    assert phi.file == "/models/phi-4.gguf" and phi.roles == ["primary", "coder"]
    assert catalog.entries["tiny"].file == "/abs/tiny.gguf"
    specs = preset_specs(catalog, skip={"tiny"})
    assert [s.id for s in specs] == ["phi-4"]
    assert (specs[0].model_path, specs[0].context_length, specs[0].n_gpu_layers) == (
        "/models/phi-4.gguf", 4096, 35,
    )  # fmt: skip


def test_an_id_keyed_catalog_and_list_presets(tmp_path: Path) -> None:
    (tmp_path / "models.yaml").write_text("a:\n  file: a.gguf\n  roles: [chat]\n")
    (tmp_path / "presets.yaml").write_text("S1: [a]\n")
    section = CatalogSection(models_file="models.yaml", presets_file="presets.yaml")
    catalog = catalog_from(section, {}, str(tmp_path / "config.yaml"))
    assert catalog is not None and catalog.presets == {"S1": ["a"]}
    assert entry_spec(catalog.entries["a"]).model_path == str(tmp_path / "a.gguf")


@pytest.mark.parametrize(
    ("presets", "preset", "message"),
    [
        ("S1: [ghost]\n", None, "'ghost', not in the catalog"),
        ("S1: [a]\n", "S9", "default preset 'S9'"),
    ],
)
def test_bad_presets_name_what_is_wrong(
    tmp_path: Path, presets: str, preset: str | None, message: str
) -> None:
    (tmp_path / "models.yaml").write_text("a:\n  file: a.gguf\n")
    (tmp_path / "presets.yaml").write_text(presets)
    section = CatalogSection(
        models_file="models.yaml", presets_file="presets.yaml", default_preset=preset
    )
    with pytest.raises(ValueError, match=message):
        catalog_from(section, {}, str(tmp_path / "c.yaml"))


def test_inference_variables_alias_and_validate(caplog: pytest.LogCaptureFixture) -> None:
    env = {"INFERENCE_PORT": "9000", "PORT": "", "INFERENCE_ENVIRONMENT": "production"}
    with caplog.at_level("INFO", logger="bodega"):
        alias_environment(env)
    assert env["PORT"] == "9000"
    assert "ignoring INFERENCE_ENVIRONMENT" in caplog.text
    with pytest.raises(ValueError, match="INFERENCE_GPU_LAYERS"):
        catalog_with_env(CatalogSection(), {"INFERENCE_GPU_LAYERS": "-5"})


def test_device_and_timeouts_from_the_environment_then_the_flag() -> None:
    env = {"MODEL_DEVICE": "CUDA:1", "EMBEDDING_GENERATE_TIMEOUT_SEC": "0.5",
           "AUDIO_PROCESS_TIMEOUT_SEC": "180"}  # fmt: skip
    runtime = runtime_with_env(RuntimeSection(), env)
    assert (runtime.device, runtime.embedding_timeout_sec, runtime.audio_timeout_sec) == (
        "cuda:1", 0.5, 180,
    )  # fmt: skip
    assert runtime_with_env(RuntimeSection(), env, device="cpu").device == "cpu"
    with pytest.raises(ValueError, match="MODEL_DEVICE"):
        runtime_with_env(RuntimeSection(), {"MODEL_DEVICE": "tpu"})
    with pytest.raises(ValueError, match="EMBEDDING_GENERATE_TIMEOUT_SEC"):
        runtime_with_env(RuntimeSection(), {"EMBEDDING_GENERATE_TIMEOUT_SEC": "0"})
    assert parse_device("cuda:2") == ("cuda", 2) and parse_device("mps") == ("mps", None)
