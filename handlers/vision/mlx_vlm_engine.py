"""Multimodal models on MLX through mlx-vlm, on the language-model engine.

mlx-vlm loads the model and its processor; everything after the prompt is
the MLX language-model engine's (``MlxEngine``): sampling, logprobs,
constraints, stop strings, parsers, cancellation, the prompt cache. What
differs is the prefill: the processor expands each image into its image
tokens, the model embeds the prompt (the vision tower encodes the images)
and the language model runs over those embeddings, with the positions the
model gives (Qwen-VL's M-RoPE); then decoding continues token by token.

Requests decode together in mlx-lm's batch; an M-RoPE model's rows keep
their own position offsets in the first layer's cache (``mlx_positions``).
Models whose caches mlx-lm cannot batch decode one at a time. The prompt
cache keys image tokens by the image's content, so a different image never
reuses another image's cached prefix.
"""

from __future__ import annotations

import hashlib
from typing import Any

from catalog.options import LoadOptions
from handlers.engine_protocol import EngineError, LoadError
from handlers.lm.chat_request import PreparedChat
from handlers.lm.chat_template import ChatTemplate
from handlers.lm.mlx_engine import DEFAULT_CONTEXT_LENGTH, PROMPT_CACHE_BYTES, MlxEngine
from handlers.lm.mlx_guided import TokenTable
from handlers.lm.mlx_loading import read_template, resolve_model_dir
from handlers.lm.mlx_scheduler import Job, Loaded
from ipc.messages import Generate, ImagePart

from .images import image_parts, open_image, pixel_bound, read_image
from .mlx_text_model import TextModel, VocabMask


class MlxVlmEngine(MlxEngine):
    """An mlx-vlm model behind the handler runtime's Engine protocol."""

    name = "mlx"

    def _load(self, spec: LoadOptions) -> Loaded:
        from mlx_lm.models.cache import LRUPromptCache
        from mlx_lm.tokenizer_utils import TokenizerWrapper
        from mlx_vlm import load

        folder = resolve_model_dir(spec.model_path)
        try:
            model, processor = load(str(folder), trust_remote_code=spec.trust_remote_code)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise LoadError(f"mlx-vlm could not load {folder}: {exc}") from exc
        self._model, self._processor = model, processor
        hf: Any = getattr(processor, "tokenizer", processor)
        eos = _eos_token_ids(model, hf)
        self._tokenizer = TokenizerWrapper(hf, eos_token_ids=eos)
        source: Any = (
            read_template(spec.chat_template_file)
            if spec.chat_template_file
            else getattr(processor, "chat_template", None) or hf.chat_template
        )
        if not source:
            raise LoadError(f"{folder} has no chat template; pass chat_template_file")
        self._template = ChatTemplate(
            source, bos_token=hf.bos_token or "", eos_token=hf.eos_token or ""
        )
        self._tokens = TokenTable(hf, eos)
        text_config = getattr(model.config, "text_config", model.config)
        trained = getattr(text_config, "max_position_embeddings", None)
        self.context_length = spec.context_length or min(
            trained or DEFAULT_CONTEXT_LENGTH, DEFAULT_CONTEXT_LENGTH
        )
        self._has_draft = False
        self._image_token = _image_token_id(model)
        self._text_model = TextModel(model.language_model)
        # A padded vocabulary: ids past the tokenizer's are never sampled.
        self._vocab_mask = VocabMask(len(hf))
        return Loaded(
            model=self._text_model,
            tokenizer=self._tokenizer,
            table=self._tokens,
            model_key=str(folder),
            prompt_cache=(
                LRUPromptCache(max_size=spec.prompt_cache_size, max_bytes=PROMPT_CACHE_BYTES)
                if spec.prompt_cache_size > 0
                else None
            ),
            sequential=not self._text_model.batchable,
        )

    def _job(self, request: Generate) -> tuple[Job, PreparedChat | None, int]:
        """The language-model job, with the multimodal prefill of the prompt."""
        job, prepared, min_tokens = super()._job(request)
        job.logits_processors.insert(0, self._vocab_mask)
        if prepared is None:
            job.prefill = self._prefill_of(job.tokens, {})
            return job, prepared, min_tokens
        parts = image_parts(request.messages or [])
        files = [read_image(p, i) for i, p in enumerate(parts)]
        inputs = self._inputs(prepared.prompt, parts, files)
        tokens = [int(t) for t in inputs.pop("input_ids")[0].tolist()]
        job.tokens = tokens
        job.max_tokens = self._budget(request, len(tokens))
        job.key = self._cache_key(tokens, files)
        job.prefill = self._prefill_of(tokens, inputs)
        return job, prepared, min_tokens

    def _budget(self, request: Generate, prompt_tokens: int) -> int:
        from handlers.lm.request_checks import token_budget

        return token_budget(request, prompt_tokens, self.context_length)

    def _inputs(self, prompt: str, parts: list[ImagePart], files: list[bytes]) -> dict[str, Any]:
        """The processor's arrays for ``prompt`` and its images (numpy)."""
        from mlx_vlm.utils import prepare_inputs

        images = [
            open_image(data, pixel_bound(p, self._spec.max_image_pixels), i)
            for i, (p, data) in enumerate(zip(parts, files, strict=True))
        ]
        sizing = {"max_pixels": self._spec.max_image_pixels} if self._auto_resize_off() else {}
        try:
            inputs = prepare_inputs(
                self._processor,
                images=images or None,
                prompts=prompt,
                add_special_tokens=False,
                return_tensors="np",
                **sizing,
            )
        except (ValueError, TypeError) as exc:
            message = f"the images could not be processed: {exc}"
            raise EngineError(message, param="messages") from exc
        found = sum(1 for _ in _runs(inputs["input_ids"][0].tolist(), self._image_token))
        if images and found != len(images):
            raise EngineError(
                f"the chat template placed {found} images for the {len(images)} sent",
                param="messages",
            )
        return dict(inputs)

    def _auto_resize_off(self) -> bool:
        """``disable_auto_resize``: images keep their size up to max_image_pixels
        instead of the processor's preferred bound (dynamic-resolution models)."""
        image_processor = getattr(self._processor, "image_processor", None)
        return self._spec.disable_auto_resize and hasattr(image_processor, "max_pixels")

    def _cache_key(self, tokens: list[int], files: list[bytes]) -> list[int]:
        """``tokens`` with each image's tokens replaced by an id drawn from
        the image's bytes: negative, so never a real token."""
        key = list(tokens)
        for (start, end), data in zip(_runs(tokens, self._image_token), files, strict=False):
            digest = hashlib.blake2b(data, digest_size=7).digest()
            key[start:end] = [-1 - int.from_bytes(digest, "big")] * (end - start)
        return key

    def _prefill_of(self, tokens: list[int], inputs: dict[str, Any]) -> Any:
        """The prefill of one prompt, run on the scheduler thread."""
        text_model = self._text_model

        def prefill(cache: Any, cached: int) -> Any:
            import mlx.core as mx

            ids = mx.array([tokens])
            arrays = {k: mx.array(v) for k, v in inputs.items() if v is not None}
            pixels = arrays.pop("pixel_values", None)
            mask = arrays.pop("attention_mask", None)
            embedded = self._model.get_input_embeddings(ids, pixels, mask=mask, **arrays)
            if cache is None:
                cache = text_model.make_cache()
            text_model.prefill(ids, embedded, cache, cached, len(tokens) - 1)
            return cache

        return prefill


def _runs(tokens: list[int], token: int | None) -> list[tuple[int, int]]:
    """The [start, end) spans of consecutive ``token`` in ``tokens``."""
    spans: list[tuple[int, int]] = []
    start = None
    for i, t in enumerate([*tokens, None]):
        if t == token and start is None:
            start = i
        elif t != token and start is not None:
            spans.append((start, i))
            start = None
    return spans


def _image_token_id(model: Any) -> int | None:
    config = model.config
    for name in ("image_token_id", "image_token_index"):
        value = getattr(config, name, None)
        if isinstance(value, int):
            return value
    return None


def _eos_token_ids(model: Any, tokenizer: Any) -> list[int]:
    value = getattr(model.config, "eos_token_id", None)
    if value is None:
        value = getattr(getattr(model.config, "text_config", None), "eos_token_id", None)
    ids = value if isinstance(value, list) else [value] if value is not None else []
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return [int(i) for i in ids]
