"""mlx-vlm's language model shaped as mlx-lm's generation calls a model."""

from __future__ import annotations

from typing import Any

PREFILL_STEP = 2048  # tokens per prefill chunk: bounds the activations' memory


class TextModel:
    """Logits out (mlx-vlm answers an output object) and, for M-RoPE models
    (Qwen-VL), each row's position offset passed on every call, read from the
    first layer's cache (``mlx_positions``): the language model would
    otherwise use whatever the last prefill left on it, for every row."""

    def __init__(self, language_model: Any) -> None:
        self._lm = language_model
        inner = getattr(language_model, "model", language_model)
        self.layers = getattr(language_model, "layers", None) or inner.layers
        self.positioned = hasattr(language_model, "_rope_deltas")

    @property
    def batchable(self) -> bool:
        """Whether mlx-lm can batch this model's caches (every layer merges,
        and an M-RoPE model's first layer is the plain cache that carries the
        offsets)."""
        from mlx_vlm.models.cache import KVCache

        layers = self.make_cache()
        if self.positioned and type(layers[0]) is not KVCache:
            return False
        return all(hasattr(layer, "merge") for layer in layers)

    def prefill(self, ids: Any, embedded: Any, cache: list[Any], start: int, end: int) -> None:
        """Run the prompt's embeddings ``[start, end)`` into ``cache``."""
        import mlx.core as mx

        deltas = getattr(embedded, "rope_deltas", None)
        positions = getattr(embedded, "position_ids", None)
        for lo in range(start, end, PREFILL_STEP):
            hi = min(end, lo + PREFILL_STEP)
            extra = {"rope_deltas": deltas} if deltas is not None else {}
            if positions is not None:
                extra["position_ids"] = positions[..., lo:hi]
            self._lm(
                ids[:, lo:hi],
                inputs_embeds=embedded.inputs_embeds[:, lo:hi],
                cache=cache,
                **extra,
            )
            mx.eval([c.state for c in cache])
        if self.positioned:
            from .mlx_positions import PositionedKVCache

            delta = int(deltas.reshape(-1)[0].item()) if deltas is not None else 0
            cache[0] = PositionedKVCache.of(cache[0], delta)

    def make_cache(self) -> list[Any]:
        """A fresh KV cache for the language model."""
        from mlx_vlm.models.cache import make_prompt_cache

        return list(make_prompt_cache(self._lm))

    def __call__(self, inputs: Any, cache: Any = None, **kwargs: Any) -> Any:
        deltas = getattr(cache[0], "rope_deltas", None) if cache else None
        if deltas is not None:
            kwargs["rope_deltas"] = deltas
        out = self._lm(inputs, cache=cache, **kwargs)
        return getattr(out, "logits", out)


class VocabMask:
    """A logits processor: ids past the tokenizer's vocabulary (a padded
    embedding matrix) are never sampled."""

    def __init__(self, vocab_size: int) -> None:
        self.vocab_size = vocab_size

    def __call__(self, tokens: Any, logits: Any) -> Any:
        import mlx.core as mx

        if logits.shape[-1] <= self.vocab_size:
            return logits
        keep = mx.arange(logits.shape[-1]) < self.vocab_size
        return mx.where(keep, logits, -mx.inf)
