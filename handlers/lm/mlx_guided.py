"""Token-level helpers of the MLX engine: token bytes, constrained decoding,
log-probabilities, seeded sampling.

Constrained decoding compiles a request's pattern (see ``constraints``) to a
regular expression, and outlines-core compiles that, with the model's
vocabulary, into an index of allowed tokens per automaton state. Indexes are
cached by the regex's hash: the same schema compiles once. The mask is applied
with numpy and ``mx`` ops, which work on every backend (outlines-core's own MLX
kernel needs Metal).
"""

from __future__ import annotations

import hashlib
import itertools
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

from handlers.lm.constraints import UnsupportedSchema
from ipc.messages import TokenLogprob, TopLogprob

INDEX_CACHE_SIZE = 32


def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level alphabet: printable stand-ins back to bytes."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    chars, extra = list(printable), 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars, strict=True)}


class TokenTable:
    """Each token id's bytes, for outlines-core's vocabulary and for logprobs."""

    def __init__(self, hf_tokenizer: Any, eos_ids: list[int]) -> None:
        vocab: dict[str, int] = hf_tokenizer.get_vocab()
        size = max(vocab.values()) + 1
        byte_level = any(t.startswith("Ġ") for t in itertools.islice(vocab, 5000))
        decoder = _byte_decoder()
        special = set(getattr(hf_tokenizer, "all_special_ids", []) or [])
        self.eos_id = eos_ids[0]
        self.eos_ids = list(eos_ids)
        self.pieces: list[bytes | None] = [None] * size
        for token, index in vocab.items():
            if index in special and index not in eos_ids:
                continue
            self.pieces[index] = _token_bytes(token, byte_level, decoder)
        self._vocabulary: Any = None
        self._indexes: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def text(self, token: int) -> tuple[str, list[int]]:
        """A token's text (lossy where it is part of a character) and bytes."""
        piece = self.pieces[token] if 0 <= token < len(self.pieces) else None
        piece = piece or b""
        return piece.decode("utf-8", errors="replace"), list(piece)

    def index(self, regex: str) -> Any:
        """The outlines-core index of ``regex`` over this vocabulary (cached)."""
        from outlines_core import Index, Vocabulary

        key = hashlib.sha256(regex.encode()).hexdigest()
        with self._lock:
            if key in self._indexes:
                self._indexes.move_to_end(key)
                return self._indexes[key]
            if self._vocabulary is None:
                tokens: dict[bytes, list[int]] = {}
                for i, piece in enumerate(self.pieces):
                    if piece and i != self.eos_id:
                        tokens.setdefault(piece, []).append(i)
                self._vocabulary = Vocabulary(self.eos_id, tokens)
            try:
                index = Index(regex, self._vocabulary)
            except Exception as exc:  # outlines-core raises ValueError and its own types
                raise UnsupportedSchema(
                    f"the output constraint cannot be compiled: {exc}",
                    param="response_format.json_schema.schema",
                ) from exc
            self._indexes[key] = index
            if len(self._indexes) > INDEX_CACHE_SIZE:
                self._indexes.popitem(last=False)
            return index


def _token_bytes(token: str, byte_level: bool, decoder: dict[str, int]) -> bytes:
    if byte_level:
        try:
            return bytes(decoder[c] for c in token)
        except KeyError:
            return token.encode()  # an added token written in plain text
    if len(token) == 6 and token.startswith("<0x") and token.endswith(">"):
        return bytes([int(token[3:5], 16)])
    return token.replace("▁", " ").encode()


class GuidedLogits:
    """An mlx-lm logits processor that allows only tokens the index accepts.

    mlx-lm calls it once per generated token with every token so far; the
    first call sees the prompt's last token, later ones the token just sampled.
    With ``free_until`` the output starts free (a reasoning section): the
    constraint starts once that text appears, or is forced to start with it
    after ``budget`` free tokens (``forced`` is the index of the text and the
    answer).
    """

    def __init__(
        self,
        index: Any,
        *,
        table: TokenTable | None = None,
        free_until: str | None = None,
        budget: int = 0,
        forced: Any = None,
    ) -> None:
        from outlines_core import Guide

        self._new_guide = Guide
        self._index, self._forced, self._table = index, forced, table
        self._end = free_until.encode() if free_until else b""
        self._free = bool(free_until)
        self._budget, self._count, self._tail = budget, 0, b""
        self._guide: Any = None if self._free else Guide(index)
        self._started = False

    def __call__(self, tokens: Any, logits: Any) -> Any:
        import mlx.core as mx

        if self._started:
            last = int(tokens[-1].item())
            if self._free:
                if not self._leave_free_text(last):
                    return self._without_eos(logits)
            elif not self._guide.is_finished():
                # mlx-lm computes one step ahead, so it may still call after the
                # end-of-sequence token; the automaton has nowhere to go from there.
                self._guide.advance(last)
        self._started = True
        if self._free:
            return self._without_eos(logits)
        allowed = np.asarray(self._guide.get_tokens(), dtype=np.int64)
        mask = np.full(logits.shape[-1], -np.inf, dtype=np.float32)
        mask[allowed[allowed < logits.shape[-1]]] = 0.0
        return logits + mx.array(mask)

    def _without_eos(self, logits: Any) -> Any:
        """The free text may not end the output: the answer must follow."""
        assert self._table is not None
        mask = np.zeros(logits.shape[-1], dtype=np.float32)
        mask[[i for i in self._table.eos_ids if i < logits.shape[-1]]] = -np.inf
        import mlx.core as mx

        return logits + mx.array(mask)

    def _leave_free_text(self, token: int) -> bool:
        """Track the free text; True once the constraint takes over."""
        assert self._table is not None
        self._count += 1
        piece = self._table.pieces[token] if token < len(self._table.pieces) else None
        self._tail = (self._tail + (piece or b""))[-(len(self._end) + 32) :]
        if self._end in self._tail:
            self._guide = self._new_guide(self._index)
        elif self._count >= self._budget:
            self._guide = self._new_guide(self._forced)
        else:
            return False
        self._free = False
        return True


class EosGate:
    """An mlx-lm logits processor that keeps the end-of-sequence tokens out:
    for the first ``min_tokens`` generated tokens, or throughout with
    ``always`` (``ignore_eos``; llama.cpp biases them to -inf the same way).

    The first call sees the prompt; each later call one token more.
    """

    def __init__(self, eos_ids: list[int], *, min_tokens: int = 0, always: bool = False) -> None:
        self._eos = list(eos_ids)
        self._min_tokens = min_tokens
        self._always = always
        self._start: int | None = None
        self._mask: Any = None

    def __call__(self, tokens: Any, logits: Any) -> Any:
        import mlx.core as mx

        seen = len(tokens)
        if self._start is None:
            self._start = seen
        if not self._always and seen - self._start >= self._min_tokens:
            return logits
        if self._mask is None or self._mask.shape[-1] != logits.shape[-1]:
            mask = np.zeros(logits.shape[-1], dtype=np.float32)
            mask[[i for i in self._eos if i < logits.shape[-1]]] = -np.inf
            self._mask = mx.array(mask)
        return logits + self._mask


def seeded(sampler: Callable[[Any], Any], seed: int) -> Callable[[Any], Any]:
    """``sampler`` drawing from its own seeded stream, whatever else is batched."""
    import mlx.core as mx

    steps = itertools.count()

    def sample(logprobs: Any) -> Any:
        mx.random.seed((seed * 1_000_003 + next(steps)) % (1 << 63))
        return sampler(logprobs)

    return sample


def token_logprob(table: TokenTable, token: int, logprobs: Any, top: int) -> TokenLogprob:
    """The chosen token's log-probability and the ``top`` most likely tokens."""
    import mlx.core as mx

    vector = logprobs.reshape(-1)
    alternatives: list[TopLogprob] = []
    if top:
        best = mx.argpartition(-vector, top - 1)[:top]
        values: list[float] = vector[best].tolist()
        ids: list[int] = best.tolist()  # type: ignore[assignment]
        for value, tid in sorted(zip(values, ids, strict=True), reverse=True):
            text, raw = table.text(tid)
            alternatives.append(TopLogprob(token=text, bytes=raw, logprob=value))
    text, raw = table.text(token)
    return TokenLogprob(
        token=text, bytes=raw, logprob=float(vector[token].item()), top=alternatives
    )
