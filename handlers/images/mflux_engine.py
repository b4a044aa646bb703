"""FLUX.1 image models on MLX through mflux (Metal, ``mlx[cuda]``, or the
Linux CPU backend: slow, but it runs).

``config_name`` picks the mflux model config: mflux's own names (``schnell``,
``dev``, ``krea-dev``) or the Bodega docs' names, mapped in ``BODEGA_NAMES``.
``quantize`` 4 or 8 quantizes the weights after loading; 16 (or none) keeps
them as stored. Image to image is mflux's own (``image_path`` +
``image_strength``); FLUX.1 has no inpainting here, so a mask is refused.
Every call into mflux runs on the engine's one thread.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from catalog.options import LoadOptions
from handlers.engine_protocol import EngineError, LoadError
from handlers.lm.mlx_loading import mlx_memory, resolve_model_dir
from ipc.messages import EngineMemory

from .common import ImageEngine, Job, OnStep, SizeRules
from .pipeline_thread import PipelineThread

if TYPE_CHECKING:
    from PIL.Image import Image

# The Bodega docs' config names -> mflux's FLUX.1 configs.
BODEGA_NAMES = {"solomon": "schnell", "solomon-max": "dev", "rehoboam": "krea-dev"}
# mflux configs driven through its FLUX.1 class (other families have classes of their own).
FLUX1_CONFIGS = ("schnell", "dev", "krea-dev")
DEFAULT_STEPS = {"schnell": 4, "dev": 14, "krea-dev": 14}
DEFAULT_GUIDANCE = 4.0


class _Stopped(Exception):
    """Raised from mflux's step callback to end the image (mflux lets it through)."""


def flux1_config(config_name: str | None) -> str:
    """The mflux config for ``config_name`` (default ``schnell``)."""
    name = BODEGA_NAMES.get(config_name or "schnell", config_name or "schnell")
    if name not in FLUX1_CONFIGS:
        known = ", ".join([*FLUX1_CONFIGS, *BODEGA_NAMES])
        raise LoadError(
            f"config_name {config_name!r} is not an mflux FLUX.1 config; known: {known}"
        )
    return name


class MfluxEngine(ImageEngine):
    """An mflux FLUX.1 model behind the handler runtime."""

    name = "mflux"
    sizes = SizeRules(default=(1024, 1024), multiple=16, smallest=64, largest=2048)
    can_edit = True

    def __init__(self, spec: LoadOptions) -> None:
        self._config_name = flux1_config(spec.config_name)
        self.default_steps = DEFAULT_STEPS[self._config_name]
        self._thread = PipelineThread("mflux")
        try:
            self._flux = self._thread.call(lambda: self._load(spec))
        except BaseException:
            self._thread.close()
            raise

    def _load(self, spec: LoadOptions) -> Any:
        from mflux.models.common.config.model_config import ModelConfig
        from mflux.models.flux.variants.txt2img.flux import Flux1

        folder = resolve_model_dir(spec.model_path)
        quantize = None if spec.quantize in (None, 16) else spec.quantize
        try:
            return Flux1(
                quantize=quantize,
                model_path=str(folder),
                lora_paths=spec.lora_paths,
                lora_scales=spec.lora_scales,
                model_config=ModelConfig.from_name(self._config_name),
            )
        except (OSError, ValueError, KeyError) as exc:
            raise LoadError(f"mflux could not load {folder}: {exc}") from exc

    def render(self, job: Job, on_step: OnStep) -> Image | None:
        """One image on the engine thread."""
        if job.mask is not None:
            raise EngineError("FLUX.1 on mflux cannot inpaint: send no mask", param="mask")
        return self._thread.call(lambda: self._render(job, on_step))

    def _render(self, job: Job, on_step: OnStep) -> Image | None:
        from mflux.callbacks.callback_registry import CallbackRegistry

        flux = self._flux
        flux.callbacks = CallbackRegistry()
        flux.callbacks.register(_StepCallback(flux, on_step))
        with tempfile.TemporaryDirectory() as folder:
            image_path = None
            if job.image is not None:
                image_path = str(Path(folder) / "input.png")
                job.image.convert("RGB").save(image_path)
            try:
                generated = flux.generate_image(
                    seed=job.seed,
                    prompt=job.prompt,
                    num_inference_steps=job.steps,
                    height=job.height,
                    width=job.width,
                    guidance=job.guidance_scale
                    if job.guidance_scale is not None
                    else DEFAULT_GUIDANCE,
                    image_path=image_path,
                    image_strength=job.strength if image_path else None,
                    negative_prompt=job.negative_prompt,
                )
            except _Stopped:
                return None
        image: Image = generated.image
        return image

    def count_tokens(self, prompt: str) -> int:
        """The prompt's T5 tokens (the encoder that reads the whole prompt)."""
        tokenizer = getattr(self._flux, "tokenizers", {}).get("t5")
        inner = getattr(tokenizer, "tokenizer", None)
        return len(inner(prompt).input_ids) if inner is not None else 0

    def prompt_limit(self) -> int | None:
        """T5's sequence length for this config (schnell 256, dev 512)."""
        return int(self._flux.model_config.max_sequence_length)

    def memory(self) -> EngineMemory:
        """MLX's active, cache and peak memory."""
        return mlx_memory()

    def close(self) -> None:
        """Stop the engine thread."""
        self._thread.close()


class _StepCallback:
    """mflux's in-loop callback: step progress, previews, stopping."""

    def __init__(self, flux: Any, on_step: OnStep) -> None:
        self._flux = flux
        self._on_step = on_step

    def call_in_loop(
        self, t: int, seed: int, prompt: str, latents: Any, config: Any, time_steps: Any, **_: Any
    ) -> None:
        step = t - config.init_time_step + 1

        def preview() -> Image:
            return _preview(self._flux, latents, config)

        if self._on_step(step, preview):
            raise _Stopped


def _preview(flux: Any, latents: Any, config: Any) -> Image:
    """The image the latents of a step decode to."""
    import mlx.core as mx
    import numpy as np
    from mflux.models.flux.latent_creator.flux_latent_creator import FluxLatentCreator
    from PIL import Image as PILImage

    unpacked = FluxLatentCreator.unpack_latents(
        latents=latents, height=config.height, width=config.width
    )
    decoded = flux.vae.decode(unpacked)
    pixels = np.array(mx.clip((decoded + 1) * 127.5, 0, 255).astype(mx.uint8))
    pixels = pixels.reshape(3, *pixels.shape[-2:])  # (1, 3, [1,] height, width)
    return PILImage.fromarray(pixels.transpose(1, 2, 0))
