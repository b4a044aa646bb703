"""The models this server runs: load, unload, resolve by id."""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import msgspec
import psutil
import trio

from bodega.errors import (
    BodegaError,
    InsufficientMemory,
    InvalidRequest,
    ModelAlreadyLoaded,
    ModelLimitReached,
    ModelLoadFailed,
    ModelNotFound,
    ModelRestarting,
    ModelUnavailable,
    NoModelLoaded,
)
from bodega.hub.download import Downloads
from bodega.settings import ModelSpec, TiersSection
from bodega.telemetry.metrics import Metrics
from catalog.files import looks_like_repo_id
from ipc import shm

from .handler import HANDLER_COMMAND
from .keep_alive import Expiry, apply_keep_alive, keep_alive_seconds
from .memory import estimate_mb, fit_in_budget
from .model import Model
from .options import check_supported
from .sources import cached_path, missing, on_demand_spec, repo_id_of, selection_of
from .tiers import route, tier_alias, tier_target

log = logging.getLogger(__name__)

CURRENT = "current"
# Model types that generate text (chat, completions, RAG answers).
TEXT_MODELS = ("lm", "multimodal")
# The endpoint each model type serves: named when a request picks the wrong kind.
SERVED_BY = {
    "lm": "/v1/chat/completions",
    "multimodal": "/v1/chat/completions",
    "embeddings": "/v1/embeddings",
    "rerank": "/v1/rerank",
    "whisper": "/v1/audio/transcriptions",
    "image-generation": "/v1/images/generations",
    "image-edit": "/v1/images/generations and /v1/images/edits",
}
# Statuses in which a model takes requests (a restarting one makes them wait).
SERVING = ("running", "restarting")
_RUNTIME_DIR = re.compile(r"^bodega-(\d+)$")


def runtime_root() -> Path:
    """Where per-server socket folders live: short, for socket path limits."""
    return Path("/tmp") if Path("/tmp").is_dir() else Path(os.environ.get("TMPDIR", "."))


def sweep_stale(root: Path | None = None) -> list[str]:
    """Remove sockets and shared memory left by servers that died."""
    removed = shm.sweep()
    root = root or runtime_root()
    for entry in root.glob("bodega-*"):
        match = _RUNTIME_DIR.match(entry.name)
        if match and entry.is_dir() and not psutil.pid_exists(int(match.group(1))):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(str(entry))
    return removed


class Registry:
    """Owns every handler; all of them live in one nursery."""

    def __init__(
        self,
        nursery: trio.Nursery,
        *,
        load_timeout: float = 600.0,
        handler_command: tuple[str, ...] = HANDLER_COMMAND,
        auto_download: bool = False,
        load_on_demand: bool = True,
        max_loaded_models: int | None = None,
        metrics: Metrics | None = None,
        log_prompts: bool = False,
        memory_budget_mb: int | None = None,
    ) -> None:
        self._nursery = nursery
        self.downloads = Downloads(nursery)
        self.auto_download = auto_download
        self.load_on_demand = load_on_demand
        self.max_loaded_models = max_loaded_models
        self.metrics = metrics
        self.log_prompts = log_prompts
        self.memory_budget_mb = memory_budget_mb
        self.tiers = TiersSection()  # the app sets the configured ones
        # The app sets these: the device of specs that name none, and what
        # maps other names (catalog ids, roles) to a model id.
        self.default_device: str | None = None
        self.name_resolver: Callable[[str], Awaitable[str | None]] | None = None
        self._handler_command = handler_command
        self._load_timeout = load_timeout
        self._models: dict[str, Model] = {}
        self._lm_order: list[str] = []
        self._on_demand: dict[str, trio.Event] = {}
        self._socket_ids = 0
        self.runtime_dir = runtime_root() / f"bodega-{os.getpid()}"
        self.runtime_dir.mkdir(mode=0o700, parents=True, exist_ok=True)

    @property
    def models(self) -> list[Model]:
        """Registered models in load order."""
        return list(self._models.values())

    async def load(self, spec: ModelSpec, *, wait: bool = True) -> Model:
        """Validate ``spec``, spawn its handler and wait until it is ready.

        A repo id is loaded from the HF cache, downloaded first when
        ``auto_download`` allows. With ``wait`` False the model is returned
        at once, ``downloading`` or ``loading``; a failure then leaves it
        listed as ``failed`` with the reason.
        """
        self._check_free(spec.id)
        await self._make_room()
        self._check_free(spec.id)
        repo_id = repo_id_of(spec)
        if repo_id is None:
            self._validate_paths(spec, check_supported(spec))
        model = Model(
            spec, self._socket_path, spec.engine, self._load_timeout, self._handler_command
        )
        model.repo_id = repo_id
        model.metrics = self.metrics
        model.log_prompts = self.log_prompts
        self._models[spec.id] = model
        if spec.model_type in ("lm", "multimodal"):
            self._lm_order.append(spec.id)
        try:
            path = await self._find_files(model)
        except BaseException:
            self._forget(spec.id)
            raise
        if not wait:
            self._nursery.start_soon(self._start_in_background, model, path)
            return model
        try:
            await self._start(model, path)
        except BaseException:
            self._forget(spec.id)
            raise
        return model

    def _check_free(self, model_id: str) -> None:
        if model_id in self._models:
            raise ModelAlreadyLoaded(
                f"A model with id {model_id!r} is already loaded; unload it first.",
                param="model_id",
            )

    async def _find_files(self, model: Model) -> Path | None:
        """The cached files of a repo-id model, or None with its download
        started (when allowed); None for a local path."""
        spec, repo_id = model.spec, model.repo_id
        if repo_id is None:
            return None
        path = await trio.to_thread.run_sync(cached_path, spec, repo_id)
        if path is None:
            allowed = self.auto_download if spec.auto_download is None else spec.auto_download
            if not allowed:
                raise missing(repo_id)
            model.download = self.downloads.start(repo_id, selection_of(spec))
        return path

    async def _start(self, model: Model, path: Path | None) -> None:
        """Wait for the model's download, then spawn its handler."""
        if model.download is not None:
            path = await model.download.wait()
            if self._models.get(model.id) is not model:
                raise ModelLoadFailed(f"model {model.id!r} was unloaded while downloading")
        files = str(path) if path is not None else model.spec.model_path
        resolved = msgspec.structs.replace(model.spec, model_path=files)
        engine = check_supported(resolved)  # ``auto`` decides by the files
        self._validate_paths(resolved, engine)
        model.use_files(files, engine, self.default_device)
        model.estimated_mb = await trio.to_thread.run_sync(
            estimate_mb, model.spec, model.handler_spec.model_path, model.handler.engine
        )
        if self.memory_budget_mb is not None:
            await fit_in_budget(model, self.models, self.memory_budget_mb, self.unload)
        await model.start(self._nursery)

    async def _start_in_background(self, model: Model, path: Path | None) -> None:
        try:
            await self._start(model, path)
        except BodegaError as exc:
            model.fail(exc.message)
            log.warning("loading %s failed: %s", model.id, exc.message)

    def _forget(self, model_id: str) -> None:
        self._models.pop(model_id, None)
        if model_id in self._lm_order:
            self._lm_order.remove(model_id)

    async def _make_room(self) -> None:
        """Unload the least recently used idle, unpinned model when at
        ``max_loaded_models``; a 503 when none may go."""
        limit = self.max_loaded_models
        if limit is None or len(self._models) < limit:
            return
        idle = [m for m in self._models.values() if m.evictable]
        if len(self._models) - len(idle) >= limit:
            raise ModelLimitReached(
                f"max_loaded_models ({limit}) are loaded and none is idle and unpinned; "
                "unload one with DELETE /v1/admin/unload-model/{id}"
            )
        for model in sorted(idle, key=lambda m: m.last_used)[: len(self._models) - limit + 1]:
            log.info("unloading %s (least recently used) to make room", model.id)
            await self.unload(model.id)

    async def find(
        self,
        name: str,
        *,
        kinds: tuple[str, ...] | None = None,
        param: str = "model",
        keep_alive: float | str | None = None,
    ) -> Model:
        """``resolve``, loading a cached repo the request names when
        ``load_on_demand`` is on (concurrent requests share one load). A
        request's ``keep_alive`` is checked first and then applied to the model.
        A name no model has may name a tier (``bodega.registry.tiers``)."""
        seconds = keep_alive_seconds(keep_alive)
        name = tier_alias(name, self.tiers) or name
        if name not in self._models and self.load_on_demand:
            # The name, or the repo id its tier maps to, may be a cached repo.
            for repo in (name, tier_target(name, self.tiers)):
                if repo and repo not in self._models and looks_like_repo_id(repo):
                    await self._load_on_demand(repo)
        if name not in self._models and name != CURRENT and self.name_resolver is not None:
            name = await self.name_resolver(name) or name
        if name not in self._models and name != CURRENT:
            name = route(name, self.tiers, self._models) or name
        model = self._models.get(name)
        if model is not None and model.status in ("downloading", "loading"):
            await model.settled()
        model = self.resolve(name, kinds=kinds, param=param)
        apply_keep_alive(model, seconds)
        return model

    def _socket_path(self) -> Path:
        """A fresh socket path for the next handler (a restart gets its own)."""
        self._socket_ids += 1
        return self.runtime_dir / f"h{self._socket_ids}.sock"

    @staticmethod
    def _validate_paths(spec: ModelSpec, engine: str) -> None:
        for name in ("model_path", "draft_model_path"):
            path = getattr(spec, name)
            repo_ok = engine in ("mlx", "mflux", "diffusers") and looks_like_repo_id(path or "")
            if path is not None and not repo_ok and not Path(path).exists():
                raise InvalidRequest(f"{name} {path!r} does not exist", param=name)
        for i, adapter in enumerate(spec.lora_paths or []):
            if not Path(adapter).is_dir():
                raise InvalidRequest(
                    f"lora_paths[{i}] {adapter!r} is not a folder", param=f"lora_paths[{i}]"
                )
        template = spec.chat_template_file
        if template is not None and not Path(template).is_file():
            raise InvalidRequest(
                f"chat_template_file {template!r} does not exist", param="chat_template_file"
            )

    async def unload(self, model_id: str) -> Model:
        """Stop a model's handler and forget it."""
        model = self._models.get(model_id)
        if model is None:
            raise ModelNotFound(f"The model {model_id!r} is not loaded.", param="model_id")
        self._forget(model_id)
        await model.stop()
        return model

    async def reload(self, spec: ModelSpec, drain_timeout: float = 30.0) -> Model:
        """Load ``spec`` in place of the running model with its id (a changed
        model on SIGHUP): requests running on the old handler finish there
        first, queued and new ones wait for the new one (``Model.replacing``).
        A model that is not running is unloaded and loaded again."""
        model = self.get(spec.id)
        if model.status != "running":
            await self.unload(spec.id)
            return await self.load(spec)
        repo_id = repo_id_of(spec)
        if repo_id is None:
            self._validate_paths(spec, check_supported(spec))  # a bad spec stops nothing
        async with model.replacing(spec, drain_timeout):
            model.repo_id = repo_id
            try:
                if self._models.get(spec.id) is not model:
                    raise ModelLoadFailed(f"model {spec.id!r} was unloaded while reloading")
                await self._start(model, await self._find_files(model))
            except BodegaError as exc:
                model.fail(exc.message)
                raise
        return model

    def get(self, model_id: str) -> Model:
        """A registered model by id (any status), or ModelNotFound."""
        try:
            return self._models[model_id]
        except KeyError:
            raise ModelNotFound(
                f"The model {model_id!r} is not loaded.", param="model_id"
            ) from None

    def resolve(
        self, name: str, *, kinds: tuple[str, ...] | None = None, param: str = "model"
    ) -> Model:
        """The running model a request names; ``current`` = latest language model.

        With ``kinds``, a model of another type is a 400 naming ``param``.
        """
        if not self._models:
            raise NoModelLoaded("No model is loaded. Load one with POST /v1/admin/load-model.")
        if name == CURRENT:
            running = [m for m in self._lm_order if self._models[m].status in SERVING]
            if not running:
                raise NoModelLoaded("No language model is running.")
            return self._models[running[-1]]
        model = self._models.get(name)
        if model is None:
            raise ModelNotFound(f"The model {name!r} does not exist or is not loaded.", param=param)
        if model.status not in SERVING:
            detail = f": {model.error}" if model.error else ""
            raise ModelUnavailable(f"The model {name!r} is {model.status}{detail}")
        model.last_used = time.monotonic()
        kind = model.spec.model_type
        if kinds is not None and kind not in kinds:
            raise InvalidRequest(
                f"model {name!r} is a {kind!r} model, which serves "
                f"{SERVED_BY.get(kind, 'another endpoint')}; this endpoint needs a "
                f"{' or '.join(repr(k) for k in kinds)} model",
                param=param,
            )
        return model

    async def _load_on_demand(self, repo_id: str) -> None:
        """Load a complete cached repo under its repo id; concurrent callers
        wait for the first one's load."""
        pending = self._on_demand.get(repo_id)
        if pending is not None:
            await pending.wait()
            return
        self._on_demand[repo_id] = pending = trio.Event()
        try:
            spec = await on_demand_spec(repo_id)
            if spec is not None and repo_id not in self._models:
                log.info("loading %s on demand", repo_id)
                try:
                    await self.load(spec)
                except InsufficientMemory as exc:
                    raise ModelRestarting(
                        f"{repo_id!r} cannot be loaded now: {exc.message}", retry_after=30
                    ) from None
        finally:
            del self._on_demand[repo_id]
            pending.set()

    async def expire_forever(self) -> None:
        """Unload idle models past their ``keep_alive`` (runs in the server's nursery)."""
        await Expiry(self).run()

    async def stop_all(self) -> None:
        """Stop every handler (in parallel) and remove the runtime folder."""
        async with trio.open_nursery() as nursery:
            for model in self._models.values():
                nursery.start_soon(model.stop)
        self._models.clear()
        self._lm_order.clear()
        shutil.rmtree(self.runtime_dir, ignore_errors=True)
