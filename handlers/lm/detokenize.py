"""Incremental detokenization that keeps every space and multi-byte char.

Decoding token by token loses leading spaces (tokenizers strip them at the
start of a text) and splits multi-byte characters. Instead decode a short
window ending at the new token and release only what the window adds, once it
does not end in an incomplete character.
"""

from __future__ import annotations

from collections.abc import Callable

REPLACEMENT = "\ufffd"


class IncrementalDecoder:
    """Turns a stream of token ids into a stream of text pieces."""

    def __init__(self, decode: Callable[[list[int]], str]) -> None:
        self._decode = decode
        self._ids: list[int] = []
        self._prefix = 0  # start of the decoding window
        self._read = 0  # tokens up to here have been released as text

    def add(self, token: int) -> str:
        """Add one token; return the text it completes (may be empty)."""
        self._ids.append(token)
        return self._release(final=False)

    def flush(self) -> str:
        """The text still held back, at the end of generation."""
        return self._release(final=True)

    def _release(self, *, final: bool) -> str:
        before = self._decode(self._ids[self._prefix : self._read])
        after = self._decode(self._ids[self._prefix :])
        if len(after) <= len(before) or (after.endswith(REPLACEMENT) and not final):
            return ""
        self._prefix, self._read = self._read, len(self._ids)
        return after[len(before) :]
