"""What both image engines share: the request loop (``n`` images, seeds,
step progress, previews, cancellation between steps), size checks, uploads
and encoding. An engine supplies ``render`` for one image."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, cast

from handlers.engine_protocol import EngineError, Send, ShouldStop
from handlers.shm_out import offload
from ipc import shm
from ipc.image_messages import GenerateImage, ImageProgress, ImageResult, ImagesDone
from ipc.messages import EngineMemory, ShmRef

if TYPE_CHECKING:
    from PIL.Image import Image

# on_step(step, preview): called after each denoising step (1-based) with a
# function that decodes the current latents; True stops the image.
OnStep = Callable[[int, Callable[[], "Image"] | None], bool]


@dataclass(frozen=True)
class Job:
    """One image to render."""

    prompt: str
    negative_prompt: str | None
    seed: int
    width: int
    height: int
    steps: int
    guidance_scale: float | None
    image: Image | None = None
    mask: Image | None = None
    strength: float | None = None
    # The images after the first, for models that take several references.
    references: tuple[Image, ...] = ()


@dataclass(frozen=True)
class SizeRules:
    """The sizes a model takes: multiples of ``multiple`` within bounds."""

    default: tuple[int, int]
    multiple: int
    smallest: int
    largest: int


def check_size(width: int | None, height: int | None, rules: SizeRules) -> tuple[int, int]:
    """(width, height) asked for (None: the model's default); EngineError
    naming ``size`` when the model cannot make it."""
    if width is None or height is None:
        return rules.default
    for side in (width, height):
        if side % rules.multiple or not rules.smallest <= side <= rules.largest:
            raise EngineError(
                f"size {width}x{height} is not one this model makes: each side a multiple "
                f"of {rules.multiple} from {rules.smallest} to {rules.largest}",
                param="size",
            )
    return width, height


def fitted_size(size: tuple[int, int], rules: SizeRules) -> tuple[int, int]:
    """An edit's ``auto`` size: the input image's, scaled into the model's
    bounds (aspect kept) and each side rounded to its multiple."""
    width, height = size
    scale = min(1.0, rules.largest / max(width, height))
    scale = max(scale, rules.smallest / min(width, height))

    def side(length: int) -> int:
        rounded = round(length * scale / rules.multiple) * rules.multiple
        return min(rules.largest, max(rules.smallest, rounded))

    return side(width), side(height)


def preview_steps(steps: int, partial_images: int) -> set[int]:
    """The steps after which a preview is sent: ``partial_images`` of them,
    spread evenly, before the last step."""
    if partial_images <= 0 or steps < 2:
        return set()
    return {max(1, round(steps * (k + 1) / (partial_images + 1))) for k in range(partial_images)}


def read_upload(ref: ShmRef, param: str) -> Image:
    """An uploaded image from shared memory (checked by the server), decoded."""
    from PIL import Image as PILImage

    try:
        with PILImage.open(io.BytesIO(shm.read(ref))) as opened:
            opened.load()
            return opened.copy()
    except (shm.ShmError, OSError, ValueError) as exc:
        raise EngineError(f"the uploaded image could not be read: {exc}", param=param) from exc


def encode(image: Image, fmt: str, compression: int | None, transparent: bool) -> bytes:
    """``image`` as a PNG, JPEG or WebP file; ``compression`` 0-100 (JPEG and
    WebP quality is 100 - compression; PNG's zlib level from it)."""
    out = io.BytesIO()
    if fmt == "png":
        level = 6 if compression is None else min(9, compression * 9 // 100)
        image.convert("RGBA" if transparent else "RGB").save(out, "PNG", compress_level=level)
    else:
        quality = 90 if compression is None else max(1, 100 - compression)
        mode = "RGBA" if transparent and fmt == "webp" else "RGB"
        image.convert(mode).save(out, fmt.upper(), quality=quality)
    return out.getvalue()


def inpaint_mask(mask: Image) -> Image:
    """OpenAI's mask (transparent = edit here) as the pipelines take one
    (white = edit here), in greyscale."""
    from PIL import ImageOps

    alpha = mask.convert("RGBA").getchannel("A")
    return ImageOps.invert(alpha).convert("L")


class ImageEngine:
    """The request loop over an engine's ``render``."""

    name = "images"
    parallel = 1
    context_length = 0
    default_steps = 4
    sizes = SizeRules(default=(512, 512), multiple=8, smallest=64, largest=2048)
    can_edit = False
    can_inpaint = False
    # How many input images an edit may send.
    max_images = 1

    def render(self, job: Job, on_step: OnStep) -> Image | None:
        """One image, or None when ``on_step`` stopped it."""
        raise NotImplementedError

    def count_tokens(self, prompt: str) -> int:
        """The prompt's tokens as the text encoder sees them."""
        return 0

    def prompt_limit(self) -> int | None:
        """The most prompt tokens the text encoder reads (None: no limit)."""
        return None

    def handle(self, request: object, send: Send, should_stop: ShouldStop) -> ImagesDone:
        """Run a ``GenerateImage``: progress, previews and results as frames."""
        request = cast(GenerateImage, request)
        job = self._job(request)
        steps = job.steps
        previews = preview_steps(steps, request.partial_images)
        for index in range(request.n):
            seed = request.seed + index

            def on_step(step: int, preview: Callable[[], Image] | None, index: int = index) -> bool:
                ref = None
                if preview is not None and step in previews and step < steps:
                    ref = self._stored(preview(), request)
                send(
                    ImageProgress(
                        req_id=request.req_id, index=index, step=step, steps=steps, preview=ref
                    )
                )
                return should_stop()

            image = self.render(replace(job, seed=seed), on_step)
            if image is None or should_stop():
                return ImagesDone(req_id=request.req_id, n=index)
            send(
                ImageResult(
                    req_id=request.req_id,
                    index=index,
                    image=self._stored(image, request),
                    width=image.size[0],
                    height=image.size[1],
                    seed=seed,
                )
            )
        return ImagesDone(
            req_id=request.req_id, n=request.n, prompt_tokens=self.count_tokens(request.prompt)
        )

    def _job(self, request: GenerateImage) -> Job:
        limit = self.prompt_limit()
        if limit is not None:
            # Never cut a prompt short: what was cut would silently not be drawn.
            for param, text in (
                ("prompt", request.prompt),
                ("negative_prompt", request.negative_prompt),
            ):
                if text and (tokens := self.count_tokens(text)) > limit:
                    raise EngineError(
                        f"{param} is {tokens} tokens; this model's text encoder reads at most "
                        f"{limit}: shorten it",
                        param=param,
                    )
        image = mask = None
        references: tuple[Image, ...] = ()
        if request.images:
            if not self.can_edit:
                raise EngineError(
                    "this model generates images but cannot edit them (load an edit-capable "
                    "model with model_type image-edit)",
                    param="image",
                )
            if len(request.images) > self.max_images:
                raise EngineError(
                    f"this model takes at most {self.max_images} input image"
                    f"{'s' if self.max_images > 1 else ''}; {len(request.images)} were sent",
                    param="image",
                )
            image = read_upload(request.images[0], "image")
            references = tuple(read_upload(ref, "image") for ref in request.images[1:])
        if request.mask is not None:
            if not self.can_inpaint:
                raise EngineError("this model cannot inpaint: send no mask", param="mask")
            mask = read_upload(request.mask, "mask")
            if image is not None and mask.size != image.size:
                raise EngineError(
                    f"the mask is {mask.size[0]}x{mask.size[1]}, the image "
                    f"{image.size[0]}x{image.size[1]}: they must be the same size",
                    param="mask",
                )
        if image is not None and (request.width is None or request.height is None):
            width, height = fitted_size(image.size, self.sizes)
        else:
            width, height = check_size(request.width, request.height, self.sizes)
        steps = request.steps or max(1, round(self.default_steps * request.steps_share))
        return Job(
            prompt=request.prompt,
            negative_prompt=request.negative_prompt,
            seed=request.seed,
            width=width,
            height=height,
            steps=steps,
            guidance_scale=request.guidance_scale,
            image=image,
            mask=mask,
            strength=request.strength,
            references=references,
        )

    def _stored(self, image: Image, request: GenerateImage) -> ShmRef:
        data = encode(image, request.output_format, request.output_compression, request.transparent)
        return cast(ShmRef, offload(data, 0))

    def memory(self) -> EngineMemory:
        """Nothing the engine can tell (the process RSS is reported anyway)."""
        return EngineMemory()

    def close(self) -> None:
        """Release the pipeline."""
