"""Diffusers pipelines (torch; CPU and CUDA): the portable image engine.

The folder's pipeline does text to image; the image-to-image and inpainting
pipelines of the same family are made from it, sharing its weights
(``AutoPipelineFor*.from_pipe``). ``quantize: 16`` loads the weights in
bfloat16 (float16 on CUDA); 4 and 8 are refused at load. ``lora_paths``
load through diffusers' own ``load_lora_weights`` (peft), all active with
their ``lora_scales``. A stop between
denoising steps ends the image at once (its result is dropped). Inpainting
keeps the pixels outside the mask exactly: the result is composited over the
original, since the VAE's round trip alone would change them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from catalog.options import LoadOptions
from handlers.device import torch_device
from handlers.engine_protocol import EngineError, LoadError
from handlers.lm.mlx_loading import resolve_model_dir

from .common import ImageEngine, Job, OnStep, SizeRules, inpaint_mask
from .pipeline_thread import PipelineThread

if TYPE_CHECKING:
    from PIL.Image import Image

DEFAULT_STEPS = 25


class DiffusersEngine(ImageEngine):
    """A diffusers pipeline folder behind the handler runtime."""

    name = "diffusers"
    can_edit = True
    can_inpaint = True

    def __init__(self, spec: LoadOptions) -> None:
        import torch

        if spec.quantize not in (None, 16):
            raise LoadError(
                f"quantize {spec.quantize} is not available on diffusers (16: bfloat16 weights)"
            )
        self._device = torch_device(spec.device)
        self._dtype = torch.float32
        if spec.quantize == 16:
            self._dtype = torch.float16 if self._device.startswith("cuda") else torch.bfloat16
        if spec.n_threads:
            torch.set_num_threads(spec.n_threads)
        self._thread = PipelineThread("diffusers")
        try:
            self._thread.call(lambda: self._load(spec))
        except BaseException:
            self._thread.close()
            raise

    def _load(self, spec: LoadOptions) -> None:
        from diffusers import AutoPipelineForText2Image

        folder = resolve_model_dir(spec.model_path)
        try:
            pipe = AutoPipelineForText2Image.from_pretrained(str(folder), torch_dtype=self._dtype)
        except (OSError, ValueError, KeyError) as exc:
            raise LoadError(f"diffusers could not load {folder}: {exc}") from exc
        pipe.set_progress_bar_config(disable=True)
        if spec.lora_paths:
            _load_loras(pipe, spec.lora_paths, spec.lora_scales)
        self._pipes: dict[str, Any] = {"text": pipe.to(self._device)}
        scale = getattr(pipe, "vae_scale_factor", 8)
        sample = getattr(getattr(getattr(pipe, "unet", None), "config", None), "sample_size", 64)
        side = int(sample) * int(scale) if isinstance(sample, int) else 512
        self.sizes = SizeRules(
            default=(side, side), multiple=8, smallest=2 * int(scale), largest=4096
        )
        self.default_steps = DEFAULT_STEPS
        self._tokenizer = getattr(pipe, "tokenizer", None)

    def _pipe(self, task: str) -> Any:
        if task not in self._pipes:
            from diffusers import AutoPipelineForImage2Image, AutoPipelineForInpainting

            auto = AutoPipelineForImage2Image if task == "image" else AutoPipelineForInpainting
            try:
                pipe = auto.from_pipe(self._pipes["text"])
            except ValueError as exc:
                raise EngineError(f"this model cannot do that edit: {exc}", param="image") from exc
            pipe.set_progress_bar_config(disable=True)
            self._pipes[task] = pipe
        return self._pipes[task]

    def render(self, job: Job, on_step: OnStep) -> Image | None:
        """One image on the engine thread."""
        return self._thread.call(lambda: self._render(job, on_step))

    def _render(self, job: Job, on_step: OnStep) -> Image | None:
        import torch

        task = "text" if job.image is None else "mask" if job.mask is not None else "image"
        pipe = self._pipe(task)
        stopped = False
        steps = job.steps
        if job.image is not None:
            strength = job.strength if job.strength is not None else 0.8
            if int(steps * strength) < 1:
                raise EngineError(
                    f"steps x strength must reach one step ({steps} x {strength:g})",
                    param="strength",
                )

        def callback(pipeline: Any, i: int, t: Any, tensors: dict[str, Any]) -> dict[str, Any]:
            nonlocal stopped
            latents = tensors["latents"]

            def preview() -> Image:
                return _decode(pipeline, latents)

            if on_step(i + 1, preview):
                stopped = True
                pipeline._interrupt = True  # diffusers' own stop between steps
            return tensors

        kwargs: dict[str, Any] = {
            "prompt": job.prompt,
            "negative_prompt": job.negative_prompt,
            "num_inference_steps": steps,
            "generator": torch.Generator(device=self._device).manual_seed(job.seed),
            "callback_on_step_end": callback,
            "callback_on_step_end_tensor_inputs": ["latents"],
        }
        if job.guidance_scale is not None:
            kwargs["guidance_scale"] = job.guidance_scale
        if job.image is not None:
            image = job.image.convert("RGB").resize((job.width, job.height))
            kwargs.update(image=image, strength=job.strength if job.strength is not None else 0.8)
            if job.mask is not None:
                mask = inpaint_mask(job.mask).resize((job.width, job.height))
                kwargs.update(mask_image=mask)
        kwargs.update(height=job.height, width=job.width)
        with torch.inference_mode():
            result = pipe(**kwargs).images[0]
        if stopped:
            return None
        if job.image is not None and job.mask is not None:
            from PIL import Image as PILImage

            result = PILImage.composite(result, kwargs["image"], kwargs["mask_image"])
        out: Image = result
        return out

    def count_tokens(self, prompt: str) -> int:
        """The prompt's CLIP tokens, with its start and end tokens."""
        if self._tokenizer is None:
            return 0
        return len(self._tokenizer(prompt, truncation=False).input_ids)

    def prompt_limit(self) -> int | None:
        """CLIP's 77 tokens (the tokenizer's ``model_max_length``)."""
        limit = getattr(self._tokenizer, "model_max_length", None)
        return int(limit) if isinstance(limit, int) and limit < 100_000 else None

    def close(self) -> None:
        """Stop the engine thread."""
        self._thread.close()


def _load_loras(pipe: Any, paths: list[str], scales: list[float] | None) -> None:
    """Every adapter of ``paths`` (a diffusers LoRA folder or ``.safetensors``
    file) active at once with its scale (1.0 by default); the pipelines made
    from this one share the adapted modules."""
    if not hasattr(pipe, "load_lora_weights"):
        raise LoadError(f"{type(pipe).__name__} takes no LoRA adapters; leave out lora_paths")
    names = [f"lora_{i}" for i in range(len(paths))]
    for i, (path, name) in enumerate(zip(paths, names, strict=True)):
        try:
            pipe.load_lora_weights(path, adapter_name=name)
        except ImportError as exc:
            raise LoadError(f"LoRA on diffusers needs peft: pip install peft ({exc})") from exc
        except (OSError, ValueError, KeyError) as exc:
            raise LoadError(
                f"lora_paths[{i}] {path!r} is not a LoRA for this model: {exc}"
            ) from exc
    pipe.set_adapters(names, adapter_weights=scales or [1.0] * len(names))


def _decode(pipe: Any, latents: Any) -> Image:
    """The image the latents of a step decode to."""
    import torch

    with torch.inference_mode():
        decoded = pipe.vae.decode(latents / pipe.vae.config.scaling_factor).sample
    image: Image = pipe.image_processor.postprocess(decoded, output_type="pil")[0]
    return image
