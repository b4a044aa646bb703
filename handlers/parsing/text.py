"""Text helpers shared by the parsers: marker hold-back and whitespace around calls."""

from __future__ import annotations

from collections.abc import Iterable

from .events import Content, Event


def partial_suffix(buffer: str, markers: Iterable[str]) -> int:
    """Length of the longest end of ``buffer`` that is a proper start of a marker."""
    best = 0
    for marker in markers:
        for k in range(min(len(marker) - 1, len(buffer)), best, -1):
            if buffer.endswith(marker[:k]):
                best = k
                break
    return best


def find_first(buffer: str, markers: Iterable[str], start: int = 0) -> tuple[int, str]:
    """(position, marker) of the earliest marker in ``buffer``; (-1, "") if none."""
    best, found = -1, ""
    for marker in markers:
        i = buffer.find(marker, start)
        if i >= 0 and (best < 0 or i < best):
            best, found = i, marker
    return best, found


class ContentSink:
    """Plain text between tool calls, with the whitespace that frames calls removed.

    Trailing whitespace is held until more text shows it is not the gap before a
    call. Whitespace that only frames calls is dropped: before a call, after the
    last one, and after a call when no text came before it (text that resumes
    after a call keeps the whitespace that separates it from earlier text).
    Text with no call keeps all its whitespace.
    """

    def __init__(self) -> None:
        self._ws = ""
        self._after_call = False
        self._emitted = False

    def text(self, text: str, out: list[Event]) -> None:
        """Take plain text; append what may be shown now to ``out``."""
        s = self._ws + text
        core = s.rstrip()
        if not core:
            self._ws = s
            return
        self._ws = s[len(core) :]
        if self._after_call and not self._emitted:
            core = core.lstrip()
        self._after_call = False
        self._emitted = True
        out.append(Content(core))

    def call_done(self) -> None:
        """A tool call ended: drop the whitespace before it and after it."""
        self._ws = ""
        self._after_call = True

    def drop_ws(self) -> None:
        """Forget held whitespace (it only framed markup)."""
        self._ws = ""

    def finish(self, out: list[Event]) -> None:
        """End of output: release held whitespace unless it follows a call."""
        if self._ws and not self._after_call:
            out.append(Content(self._ws))
        self._ws = ""
