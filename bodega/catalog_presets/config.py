"""The inference-service catalog (``models.yaml``) and presets (``presets.yaml``).

A catalog entry names a model file with its context length, roles and GPU
layers; it becomes a ModelSpec (``file`` → ``model_path``, ``ctx`` →
``context_length``, ``gpu_layers`` → ``n_gpu_layers``) when loaded. A preset
is a set of catalog ids loaded together; ``default_preset`` (or
``INFERENCE_DEFAULT_PRESET``) loads one at start.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import msgspec
import yaml
from msgspec import Meta

from bodega.env_overrides import Override, overridden, variable
from catalog.engines import ModelType
from catalog.files import is_gguf

log = logging.getLogger("bodega")


class CatalogSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """``catalog:`` in config.yaml: where the catalog and presets are.

    Relative paths are taken from the config file's folder; a relative
    ``file`` in the catalog from ``models_dir`` (default: the catalog's folder).
    ``gpu_layers`` is the default for GGUF entries that give none.
    """

    models_file: str | None = None
    presets_file: str | None = None
    default_preset: str | None = None
    models_dir: str | None = None
    gpu_layers: Annotated[int, Meta(ge=-1)] | None = None


class CatalogEntry(msgspec.Struct, kw_only=True):
    """One model of ``models.yaml`` (the inventory's fields; others are kept out)."""

    id: Annotated[str, Meta(min_length=1, max_length=256)]
    file: Annotated[str, Meta(min_length=1)]
    name: str | None = None
    description: str | None = None
    size: float | None = None  # GB, as the inventory gives it
    ctx: Annotated[int, Meta(ge=16)] | None = None
    quantization: str | None = None
    roles: list[str] = []
    gpu_layers: Annotated[int, Meta(ge=-1)] | None = None
    model_type: ModelType = "lm"


class Catalog(msgspec.Struct, kw_only=True):
    """The parsed catalog: entries by id (file order), presets by name."""

    entries: dict[str, CatalogEntry] = {}
    presets: dict[str, list[str]] = {}
    default_preset: str | None = None
    models_dir: str | None = None


# The inventory's INFERENCE_* variables with a meaning here -> catalog keys;
# INFERENCE_PORT / HOST / LOG_LEVEL stand for PORT / HOST / LOG_LEVEL.
CATALOG_ENV_KEYS = {
    "INFERENCE_MODELS_DIR": "models_dir",
    "INFERENCE_DEFAULT_PRESET": "default_preset",
    "INFERENCE_GPU_LAYERS": "gpu_layers",
}
ENV_ALIASES = {
    "INFERENCE_PORT": "PORT",
    "INFERENCE_HOST": "HOST",
    "INFERENCE_LOG_LEVEL": "LOG_LEVEL",
}
IGNORED_ENV = (
    "INFERENCE_ENVIRONMENT",
    "INFERENCE_BACKEND",
    "INFERENCE_GPU_INDEX",
    "INFERENCE_VISION_MODEL_REVISION",
    "OTLP_ENDPOINT",
    "TRACING_ENABLED",
)


def alias_environment(environ: dict[str, str] | Any) -> None:
    """Copy INFERENCE_PORT / HOST / LOG_LEVEL onto PORT / HOST / LOG_LEVEL when
    those are unset, and log the inventory's variables that mean nothing here."""
    for name, alias in ENV_ALIASES.items():
        if environ.get(name) and not environ.get(alias):
            environ[alias] = environ[name]
    for name in IGNORED_ENV:
        if environ.get(name):
            log.info("ignoring %s: it has no meaning in Bodega (see the README)", name)


def catalog_with_env(section: CatalogSection, environ: Mapping[str, str]) -> CatalogSection:
    """``section`` with the INFERENCE_* variables: ``INFERENCE_CONFIG_DIR``
    points at its models.yaml and presets.yaml; ValueError naming a bad one."""
    overrides: list[Override] = []
    folder = environ.get("INFERENCE_CONFIG_DIR", "").strip()
    if folder:
        source = variable("INFERENCE_CONFIG_DIR")
        overrides.append((source, ("models_file",), str(Path(folder) / "models.yaml")))
        presets = Path(folder) / "presets.yaml"
        if presets.is_file():
            overrides.append((source, ("presets_file",), str(presets)))
    for name, key in CATALOG_ENV_KEYS.items():
        value = environ.get(name, "").strip()
        if value:
            overrides.append((variable(name), (key,), value))
    return overridden(section, overrides)


def _read_yaml(path: Path, what: str) -> Any:
    try:
        return yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise ValueError(f"cannot read {what} {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"{what} {path} is not valid YAML: {exc}".replace("\n", " ")) from None


def _entries(raw: Any) -> list[dict[str, Any]]:
    """models.yaml as a list of entries: ``models:`` holding a list or an
    id-keyed mapping, or the id-keyed mapping itself."""
    body = raw.get("models", raw) if isinstance(raw, dict) else raw
    if isinstance(body, dict):
        return [{"id": key, **(value or {})} for key, value in body.items()]
    if isinstance(body, list):
        return body
    raise ValueError("models.yaml holds neither a list nor a mapping of models")


def _presets(raw: Any) -> dict[str, list[str]]:
    """presets.yaml as name -> model ids: ``presets:`` or the top level,
    each a list of ids or a mapping with ``models``."""
    body = raw.get("presets", raw) if isinstance(raw, dict) else None
    if not isinstance(body, dict):
        raise ValueError("presets.yaml holds no mapping of presets")
    presets: dict[str, list[str]] = {}
    for name, value in body.items():
        models = value.get("models") if isinstance(value, dict) else value
        if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
            raise ValueError(f"preset {name!r} needs a list of catalog ids under 'models'")
        presets[str(name)] = models
    return presets


def load_catalog(section: CatalogSection, base: Path) -> Catalog | None:
    """The catalog and presets ``section`` points at (None when it names no
    catalog); ValueError naming the file or entry at fault."""
    if section.models_file is None:
        if section.default_preset or section.presets_file:
            raise ValueError("catalog: presets need a models_file (or INFERENCE_CONFIG_DIR)")
        return None
    models_file = base / section.models_file
    try:
        entries = msgspec.convert(_entries(_read_yaml(models_file, "catalog")), list[CatalogEntry])
    except msgspec.ValidationError as exc:
        raise ValueError(f"invalid catalog {models_file}: {exc}") from None
    by_id: dict[str, CatalogEntry] = {}
    models_dir = base / section.models_dir if section.models_dir else models_file.parent
    for entry in entries:
        if entry.id in by_id:
            raise ValueError(f"invalid catalog {models_file}: duplicate id {entry.id!r}")
        path = models_dir / entry.file
        layers = entry.gpu_layers
        if layers is None and is_gguf(str(path)):
            layers = section.gpu_layers
        by_id[entry.id] = msgspec.structs.replace(entry, file=str(path), gpu_layers=layers)
    presets: dict[str, list[str]] = {}
    if section.presets_file is not None:
        presets_file = base / section.presets_file
        presets = _presets(_read_yaml(presets_file, "presets file"))
        for name, ids in presets.items():
            unknown = [i for i in ids if i not in by_id]
            if unknown:
                raise ValueError(f"preset {name!r} names {unknown[0]!r}, not in the catalog")
    if section.default_preset is not None and section.default_preset not in presets:
        raise ValueError(f"default preset {section.default_preset!r} is not in the presets file")
    return Catalog(
        entries=by_id,
        presets=presets,
        default_preset=section.default_preset,
        models_dir=str(models_dir),
    )


def catalog_from(
    section: CatalogSection, environ: Mapping[str, str], config_path: str | None
) -> Catalog | None:
    """The catalog of ``section`` with the environment applied; relative
    paths from the config file's folder (else the working directory)."""
    base = Path(config_path).parent if config_path else Path.cwd()
    return load_catalog(catalog_with_env(section, environ), base)
