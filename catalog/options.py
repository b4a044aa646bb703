"""The options a model is loaded with, each with its one default.

The server's ModelSpec (bodega.settings) extends LoadOptions with the
options only the server acts on (queueing, restarts); the handler receives
LoadOptions itself, as JSON in ``--spec``, with ``model_id`` and ``engine``
resolved.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from catalog.devices import DEVICE_PATTERN
from catalog.engines import ENGINE_SPECIFIC, EngineName, ModelType


class LoadOptions(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    """What a model handler needs to load and serve one model."""

    model_path: Annotated[str, Meta(min_length=1)]
    model_id: Annotated[str, Meta(min_length=1, max_length=256)] | None = None
    model_type: ModelType = "lm"
    engine: EngineName = "auto"
    context_length: Annotated[int, Meta(ge=16)] | None = None
    max_concurrency: Annotated[int, Meta(ge=1, le=256)] = 1
    prompt_cache_size: Annotated[int, Meta(ge=0)] = 10
    n_threads: Annotated[int, Meta(ge=1)] | None = None
    quantize: Literal[4, 8, 16] | None = None
    config_name: str | None = None
    lora_paths: list[str] | None = None
    lora_scales: list[float] | None = None
    # Multimodal: the GGUF projector (default: the mmproj*.gguf beside the
    # model), the most images one request may carry, and the pixel bound
    # every image is scaled down to (kept even with disable_auto_resize).
    disable_auto_resize: bool = False
    mmproj_path: str | None = None
    max_images: Annotated[int, Meta(ge=1, le=256)] = 16
    max_image_pixels: Annotated[int, Meta(ge=1024)] = 4096 * 4096
    enable_auto_tool_choice: bool = False
    tool_call_parser: str | None = None
    reasoning_parser: str | None = None
    trust_remote_code: bool = False
    chat_template_file: str | None = None
    draft_model_path: str | None = None
    num_draft_tokens: Annotated[int, Meta(ge=1)] | None = None
    # Embeddings: coalesce requests for ``batch_window_ms`` into one forward
    # pass of at most ``max_batch_size`` inputs; an LRU of recent inputs.
    batch_window_ms: Annotated[float, Meta(ge=0, le=1000)] = 2.0
    max_batch_size: Annotated[int, Meta(ge=1, le=4096)] = 64
    embedding_cache_size: Annotated[int, Meta(ge=0)] = 1024
    # llama.cpp (the LLM Service docs' knobs): logical batch size, layers
    # offloaded to the GPU (-1 all), and how the weights are read (None:
    # llama.cpp's own choice).
    n_batch: Annotated[int, Meta(ge=1)] | None = None
    n_gpu_layers: Annotated[int, Meta(ge=-1)] | None = None
    use_mmap: bool | None = None
    use_mlock: bool | None = None
    # Where torch / CTranslate2 / llama.cpp engines run (catalog.devices);
    # None: the server's ``runtime.device`` (MODEL_DEVICE), else auto.
    device: Annotated[str, Meta(pattern=DEVICE_PATTERN)] | None = None

    @property
    def id(self) -> str:
        """The id clients use: ``model_id``, else the path."""
        return self.model_id or self.model_path


_DEFAULTS = {
    field.name: field.default
    for field in msgspec.structs.fields(LoadOptions)
    if field.default is not msgspec.NODEFAULT
}


def unhonoured(options: LoadOptions, honoured: frozenset[str]) -> list[str]:
    """The engine-specific options ``options`` sets (away from their default)
    that are not in ``honoured``, in a fixed order."""
    return [
        name
        for name in ENGINE_SPECIFIC
        if getattr(options, name) != _DEFAULTS[name] and name not in honoured
    ]


def load_options(options: LoadOptions, **resolved: object) -> LoadOptions:
    """Exactly the LoadOptions part of ``options`` (a ModelSpec drops its
    server-only fields) with the ``resolved`` fields replaced; validated."""
    picked = {name: getattr(options, name) for name in LoadOptions.__struct_fields__}
    return msgspec.convert({**picked, **resolved}, LoadOptions)
