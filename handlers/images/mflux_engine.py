"""Image models on MLX through mflux (Metal, ``mlx[cuda]``, or the Linux CPU
backend: slow, but it runs): FLUX.1, FLUX.2 klein and Z-Image.

``config_name`` picks the mflux model config: mflux's own names (``schnell``,
``dev``, ``krea-dev``, ``dev-kontext``, ``dev-fill``, ``flux2-klein-4b``,
``flux2-klein-9b``, ``z-image-turbo``, ``z-image``) or the Bodega docs' names,
mapped in ``BODEGA_NAMES``.
``quantize`` 4 or 8 quantizes the weights after loading; 16 (or none) keeps
them as stored. The text-to-image configs (Z-Image's too) do image to image
(mflux's ``image_path`` + ``image_strength``);
``dev-kontext`` edits the image it is given as the prompt says (no strength);
``dev-fill`` inpaints under a mask, and the pixels outside it are kept
exactly. FLUX.2 klein loaded as ``image-generation`` generates (and does
image to image); loaded as ``image-edit`` it edits with up to
``FLUX2_REFERENCES`` reference images and cannot generate (mflux 0.24's edit
class needs at least one reference).
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

from .common import ImageEngine, Job, OnStep, SizeRules, inpaint_mask
from .pipeline_thread import PipelineThread

if TYPE_CHECKING:
    from PIL.Image import Image

# The Bodega docs' config names -> mflux's FLUX.1 configs.
BODEGA_NAMES = {"solomon": "schnell", "solomon-max": "dev", "rehoboam": "krea-dev"}
# mflux configs -> the class that drives them.
CONFIGS = {
    "schnell": "txt2img",
    "dev": "txt2img",
    "krea-dev": "txt2img",
    "dev-kontext": "kontext",
    "dev-fill": "fill",
    "flux2-klein-4b": "flux2",
    "flux2-klein-9b": "flux2",
    "z-image-turbo": "zimage",
    "z-image": "zimage",
}
DEFAULT_STEPS = {
    "schnell": 4, "dev": 14, "krea-dev": 14, "dev-kontext": 14, "dev-fill": 14,
    "flux2-klein-4b": 4, "flux2-klein-9b": 4, "z-image-turbo": 9, "z-image": 28,
}  # fmt: skip
DEFAULT_GUIDANCE = 4.0
# FLUX.2 klein is distilled: mflux's own default guidance for it.
FLUX2_GUIDANCE = 1.0
# Reference images a FLUX.2 edit takes (each adds its tokens to every step).
FLUX2_REFERENCES = 4
# Guidance-distilled configs: mflux forces their guidance to 0.
NO_GUIDANCE = ("z-image-turbo",)


class _Stopped(Exception):
    """Raised from mflux's step callback to end the image (mflux lets it through)."""


def mflux_config(config_name: str | None) -> str:
    """The mflux config for ``config_name`` (default ``schnell``)."""
    name = BODEGA_NAMES.get(config_name or "schnell", config_name or "schnell")
    if name not in CONFIGS:
        known = ", ".join([*CONFIGS, *BODEGA_NAMES])
        raise LoadError(f"config_name {config_name!r} is not an mflux config served here: {known}")
    return name


def _variant_class(variant: str) -> Any:
    if variant == "kontext":
        from mflux.models.flux.variants.kontext.flux_kontext import Flux1Kontext

        return Flux1Kontext
    if variant == "fill":
        from mflux.models.flux.variants.fill.flux_fill import Flux1Fill

        return Flux1Fill
    if variant == "zimage":
        from mflux.models.z_image.variants.z_image import ZImage

        return ZImage
    if variant == "flux2":
        from mflux.models.flux2.variants.txt2img.flux2_klein import Flux2Klein

        return Flux2Klein
    if variant == "flux2-edit":
        from mflux.models.flux2.variants.edit.flux2_klein_edit import Flux2KleinEdit

        return Flux2KleinEdit
    from mflux.models.flux.variants.txt2img.flux import Flux1

    return Flux1


class MfluxEngine(ImageEngine):
    """An mflux model behind the handler runtime."""

    name = "mflux"
    sizes = SizeRules(default=(1024, 1024), multiple=16, smallest=64, largest=2048)
    can_edit = True

    def __init__(self, spec: LoadOptions) -> None:
        self._config_name = mflux_config(spec.config_name)
        self._variant = CONFIGS[self._config_name]
        if self._variant == "flux2" and spec.model_type == "image-edit":
            self._variant = "flux2-edit"
        self.can_inpaint = self._variant == "fill"
        self.max_images = FLUX2_REFERENCES if self._variant == "flux2-edit" else 1
        self.default_steps = DEFAULT_STEPS[self._config_name]
        self._thread = PipelineThread("mflux")
        try:
            self._flux = self._thread.call(lambda: self._load(spec))
        except BaseException:
            self._thread.close()
            raise

    def _load(self, spec: LoadOptions) -> Any:
        from mflux.models.common.config.model_config import ModelConfig

        folder = resolve_model_dir(spec.model_path)
        quantize = None if spec.quantize in (None, 16) else spec.quantize
        try:
            return _variant_class(self._variant)(
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
        self._check(job)
        return self._thread.call(lambda: self._render(job, on_step))

    def _check(self, job: Job) -> None:
        config, variant = self._config_name, self._variant
        if config in NO_GUIDANCE and job.guidance_scale is not None:
            raise EngineError(
                f"{config} is guidance-distilled: it takes no guidance_scale",
                param="guidance_scale",
            )
        if variant in ("kontext", "fill", "flux2-edit") and job.image is None:
            hint = " (load it as image-generation to generate)" if variant == "flux2-edit" else ""
            raise EngineError(
                f"{config} edits an image: send one to /v1/images/edits{hint}", param="image"
            )
        if variant in ("kontext", "fill", "flux2", "flux2-edit") and job.negative_prompt:
            raise EngineError(f"{config} takes no negative_prompt", param="negative_prompt")
        if variant == "kontext" and job.strength is not None:
            raise EngineError(
                f"{config} edits as the prompt says and takes no strength", param="strength"
            )
        if variant == "fill" and job.mask is None:
            raise EngineError(f"{config} inpaints: send a mask", param="mask")

    def _render(self, job: Job, on_step: OnStep) -> Image | None:
        from mflux.callbacks.callback_registry import CallbackRegistry

        flux = self._flux
        flux.callbacks = CallbackRegistry()
        flux.callbacks.register(_StepCallback(flux, on_step))
        default = FLUX2_GUIDANCE if self._variant.startswith("flux2") else DEFAULT_GUIDANCE
        guidance = job.guidance_scale if job.guidance_scale is not None else default
        if self._config_name in NO_GUIDANCE:
            guidance = 0.0
        kwargs: dict[str, Any] = {
            "seed": job.seed,
            "prompt": job.prompt,
            "num_inference_steps": job.steps,
            "height": job.height,
            "width": job.width,
            "guidance": guidance,
        }
        with tempfile.TemporaryDirectory() as folder:
            source = mask = None
            if job.image is not None and self._variant == "flux2-edit":
                # References keep their own sizes: mflux encodes each at its aspect.
                paths = []
                for i, picture in enumerate((job.image, *job.references)):
                    paths.append(str(Path(folder) / f"reference-{i}.png"))
                    picture.convert("RGB").save(paths[-1])
                kwargs.update(image_paths=paths, image_strength=job.strength)
            elif job.image is not None:
                source = job.image.convert("RGB").resize((job.width, job.height))
                kwargs["image_path"] = str(Path(folder) / "input.png")
                source.save(kwargs["image_path"])
                if self._variant != "kontext":
                    kwargs["image_strength"] = job.strength
            if self._variant in ("txt2img", "zimage"):
                kwargs["negative_prompt"] = job.negative_prompt
            if job.mask is not None:
                mask = inpaint_mask(job.mask).resize((job.width, job.height))
                kwargs["masked_image_path"] = str(Path(folder) / "mask.png")
                mask.save(kwargs["masked_image_path"])
            try:
                generated = flux.generate_image(**kwargs)
            except _Stopped:
                return None
        image: Image = generated.image
        if source is not None and mask is not None:
            from PIL import Image as PILImage

            image = PILImage.composite(image, source, mask)  # outside the mask: as sent
        return image

    def count_tokens(self, prompt: str) -> int:
        """The prompt's tokens in the encoder that reads the whole prompt
        (FLUX.1: T5; FLUX.2 and Z-Image: their Qwen3 encoders)."""
        tokenizers = getattr(self._flux, "tokenizers", {})
        tokenizer = tokenizers.get("t5") or tokenizers.get("z_image") or tokenizers.get("qwen3")
        inner = getattr(tokenizer, "tokenizer", None)
        return len(inner(prompt).input_ids) if inner is not None else 0

    def prompt_limit(self) -> int | None:
        """That encoder's sequence length for this config (schnell 256, dev 512)."""
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
