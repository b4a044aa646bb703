"""mlx-vlm's language model shaped as mlx-lm's generation calls a model."""

from __future__ import annotations

from typing import Any

PREFILL_STEP = 2048  # tokens per prefill chunk: bounds the activations' memory


class TextModel:
    """Logits out (mlx-vlm answers an output object) and the current
    request's position offsets (``rope_deltas``, Qwen-VL's M-RoPE) passed on
    every call: the language model would otherwise use whatever the last
    prefill left on it. One request at a time (the scheduler's sequential path)."""

    def __init__(self, language_model: Any) -> None:
        self._lm = language_model
        inner = getattr(language_model, "model", language_model)
        self.layers = getattr(language_model, "layers", None) or inner.layers
        self._positions: dict[str, Any] = {}

    def start(self, embedded: Any) -> None:
        """Take a new request's embeddings (from ``get_input_embeddings``)."""
        deltas = getattr(embedded, "rope_deltas", None)
        self._positions = {"rope_deltas": deltas} if deltas is not None else {}

    def prefill(self, ids: Any, embedded: Any, cache: Any, start: int, end: int) -> None:
        """Run the prompt's embeddings ``[start, end)`` into ``cache``."""
        import mlx.core as mx

        positions = getattr(embedded, "position_ids", None)
        for lo in range(start, end, PREFILL_STEP):
            hi = min(end, lo + PREFILL_STEP)
            extra = dict(self._positions)
            if positions is not None:
                extra["position_ids"] = positions[..., lo:hi]
            self._lm(
                ids[:, lo:hi],
                inputs_embeds=embedded.inputs_embeds[:, lo:hi],
                cache=cache,
                **extra,
            )
            mx.eval([c.state for c in cache])

    def make_cache(self) -> list[Any]:
        """A fresh KV cache for the language model."""
        from mlx_vlm.models.cache import make_prompt_cache

        return list(make_prompt_cache(self._lm))

    def __call__(self, inputs: Any, cache: Any = None, **kwargs: Any) -> Any:
        out = self._lm(inputs, cache=cache, **self._positions, **kwargs)
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
