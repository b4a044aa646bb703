"""The models this server runs: load, unload, resolve by id."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import psutil
import trio

from bodega.errors import (
    InvalidRequest,
    ModelAlreadyLoaded,
    ModelNotFound,
    ModelUnavailable,
    NoModelLoaded,
)
from bodega.settings import ModelSpec
from catalog.files import looks_like_repo_id
from ipc import shm

from .handler import HANDLER_COMMAND
from .model import Model
from .options import check_supported

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
    ) -> None:
        self._nursery = nursery
        self._handler_command = handler_command
        self._load_timeout = load_timeout
        self._models: dict[str, Model] = {}
        self._lm_order: list[str] = []
        self._socket_ids = 0
        self.runtime_dir = runtime_root() / f"bodega-{os.getpid()}"
        self.runtime_dir.mkdir(mode=0o700, parents=True, exist_ok=True)

    @property
    def models(self) -> list[Model]:
        """Registered models in load order."""
        return list(self._models.values())

    async def load(self, spec: ModelSpec) -> Model:
        """Validate ``spec``, spawn its handler and wait until it is ready."""
        if spec.id in self._models:
            raise ModelAlreadyLoaded(
                f"A model with id {spec.id!r} is already loaded; unload it first.", param="model_id"
            )
        engine = check_supported(spec)
        self._validate_paths(spec, engine)
        model = Model(spec, self._socket_path, engine, self._load_timeout, self._handler_command)
        self._models[spec.id] = model
        try:
            await model.start(self._nursery)
        except BaseException:
            self._models.pop(spec.id, None)
            raise
        if spec.model_type in ("lm", "multimodal"):
            self._lm_order.append(spec.id)
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
        model = self._models.pop(model_id, None)
        if model is None:
            raise ModelNotFound(f"The model {model_id!r} is not loaded.", param="model_id")
        if model_id in self._lm_order:
            self._lm_order.remove(model_id)
        await model.stop()
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
        kind = model.spec.model_type
        if kinds is not None and kind not in kinds:
            raise InvalidRequest(
                f"model {name!r} is a {kind!r} model, which serves "
                f"{SERVED_BY.get(kind, 'another endpoint')}; this endpoint needs a "
                f"{' or '.join(repr(k) for k in kinds)} model",
                param=param,
            )
        return model

    async def stop_all(self) -> None:
        """Stop every handler (in parallel) and remove the runtime folder."""
        async with trio.open_nursery() as nursery:
            for model in self._models.values():
                nursery.start_soon(model.stop)
        self._models.clear()
        self._lm_order.clear()
        shutil.rmtree(self.runtime_dir, ignore_errors=True)
