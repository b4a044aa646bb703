"""The images of a chat request: read from data: URLs or fetched (guarded),
checked, and put in shared memory for the handler.

Every image part of every message is resolved before the request is sent,
concurrently; the first bad one fails the request with a 400 (413 over the
size cap) naming its part, ``messages[i].content[j].image_url.url``. The
segments live as long as the request: ``RequestImages.release`` unlinks them.
"""

from __future__ import annotations

import atexit
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field

import trio

from bodega.errors import BodegaError, InvalidRequest
from bodega.openai.requests import ChatCompletionRequest, ImageUrl
from bodega.registry.model import Model
from ipc import shm
from ipc.messages import ImagePart, ShmRef

from .fetch import FetchPolicy, Resolver, fetch_image, system_resolver
from .image_bytes import data_url_image

Position = tuple[int, int]  # (message index, content part index)


_pool: shm.ShmPool | None = None


def image_pool() -> shm.ShmPool:
    """This process's pool of image segments (closed at exit)."""
    global _pool
    if _pool is None:
        _pool = shm.ShmPool()
        atexit.register(_pool.close)
    return _pool


@dataclass
class RequestImages:
    """A request's images in shared memory, by the position of their part."""

    parts: dict[Position, ImagePart] = field(default_factory=dict)

    def add(self, position: Position, data: bytes, detail: str = "auto") -> ShmRef:
        """Put an image in shared memory for the part at ``position``."""
        ref = image_pool().put(data)
        self.parts[position] = ImagePart(image=ref, detail=detail)  # type: ignore[arg-type]
        return ref

    def release(self) -> None:
        """Give every segment back (the request is over); idempotent."""
        parts, self.parts = self.parts, {}
        for part in parts.values():
            image_pool().release(part.image)

    async def released_after(self, events: AsyncIterator[bytes]) -> AsyncGenerator[bytes, None]:
        """``events``, then the segments released however the stream ends."""
        try:
            async for event in events:
                yield event
        finally:
            self.release()


def image_urls(request: ChatCompletionRequest) -> dict[Position, ImageUrl]:
    """Every ``image_url`` part of ``request``, by position."""
    found: dict[Position, ImageUrl] = {}
    for i, message in enumerate(request.messages):
        if not isinstance(message.content, list):
            continue
        for j, part in enumerate(message.content):
            if part.type != "image_url":
                continue
            if part.image_url is None:
                raise InvalidRequest(
                    'An image_url part needs its image_url object ({"url": ...}).',
                    param=f"messages[{i}].content[{j}].image_url",
                )
            found[(i, j)] = part.image_url
    return found


def check_multimodal(model: Model, urls: dict[Position, ImageUrl]) -> None:
    """400 when ``model`` cannot take these images: it is text-only, or they
    are more than its ``max_images``."""
    if not urls:
        return
    i, j = next(iter(urls))
    if model.spec.model_type != "multimodal":
        raise InvalidRequest(
            f"The model {model.id!r} is not multimodal: it takes text content parts only "
            "(images need a model loaded with model_type multimodal).",
            param=f"messages[{i}].content[{j}].type",
        )
    limit = model.spec.max_images
    if len(urls) > limit:
        i, j = list(urls)[limit]
        raise InvalidRequest(
            f"The request carries {len(urls)} images; the model {model.id!r} takes at most "
            f"{limit} per request (max_images).",
            param=f"messages[{i}].content[{j}]",
        )


async def request_images(
    request: ChatCompletionRequest,
    model: Model,
    policy: FetchPolicy,
    *,
    resolver: Resolver = system_resolver,
) -> RequestImages:
    """Resolve, check and store every image of ``request`` for ``model``."""
    urls = image_urls(request)
    check_multimodal(model, urls)
    images = RequestImages()
    if not urls:
        return images
    found: dict[Position, bytes] = {}
    errors: list[BodegaError] = []

    async def one(position: Position, url: str, cancel: trio.CancelScope) -> None:
        param = f"messages[{position[0]}].content[{position[1]}].image_url.url"
        try:
            found[position] = await image_bytes(url, policy, param=param, resolver=resolver)
        except BodegaError as exc:
            errors.append(exc)  # the first bad image answers; the others stop
            cancel.cancel()

    async with trio.open_nursery() as nursery:
        for position, image_url in urls.items():
            nursery.start_soon(one, position, image_url.url, nursery.cancel_scope)
    if errors:
        raise errors[0]
    try:
        for position, image_url in urls.items():
            images.add(position, found[position], image_url.detail)
    except BaseException:
        images.release()
        raise
    return images


async def image_bytes(url: str, policy: FetchPolicy, *, param: str, resolver: Resolver) -> bytes:
    """The checked image a ``data:``, ``https:`` or ``http:`` URL names."""
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "data":
        return data_url_image(url, max_bytes=policy.max_bytes, param=param)
    if scheme in ("http", "https"):
        return await fetch_image(url, policy, param=param, resolver=resolver)
    named = f"{scheme}: URLs are" if scheme else "This URL has no scheme; it is"
    raise InvalidRequest(
        f"{named} not supported for images; send an https:, http: or base64 data: URL.",
        param=param,
    )
