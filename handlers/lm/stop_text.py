"""Stop sequences on generated text, across token boundaries.

Text that might be the start of a stop sequence is held back until the next
piece shows whether it is; text from a stop sequence on is never released.
"""

from __future__ import annotations


class StopTextFilter:
    """Feed generated pieces in; get back what may be shown."""

    def __init__(self, stops: list[str]) -> None:
        self._stops = [s for s in stops if s]
        self._held = ""
        # The stop sequence that ended the text ("" until one is hit): the
        # earliest in the text, the first listed of those starting there.
        self.matched = ""

    def feed(self, text: str) -> tuple[str, bool]:
        """(text to release, whether a stop sequence was hit)."""
        if not self._stops:
            return text, False
        buffer = self._held + text
        hits = [(i, n, s) for n, s in enumerate(self._stops) if (i := buffer.find(s)) >= 0]
        if hits:
            self._held = ""
            at, _, self.matched = min(hits)
            return buffer[:at], True
        hold = max((self._partial(buffer, s) for s in self._stops), default=0)
        self._held = buffer[len(buffer) - hold :] if hold else ""
        return buffer[: len(buffer) - hold], False

    def flush(self) -> str:
        """Release what is held back (generation ended without a stop)."""
        held, self._held = self._held, ""
        return held

    @staticmethod
    def _partial(buffer: str, stop: str) -> int:
        """Length of the longest end of ``buffer`` that begins ``stop``."""
        for k in range(min(len(stop) - 1, len(buffer)), 0, -1):
            if buffer.endswith(stop[:k]):
                return k
        return 0
