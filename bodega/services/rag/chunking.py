"""Split page texts into overlapping chunks that remember their page."""

from __future__ import annotations

import re

import msgspec

_SPACES = re.compile(r"[ \t\r\f\v]+")
_BLANK_LINES = re.compile(r"\n\s*\n+")


class Chunk(msgspec.Struct, frozen=True):
    """A piece of a document: its text and its (1-based) page."""

    text: str
    page: int


def normalise(text: str) -> str:
    """Collapse runs of spaces and blank lines; strip."""
    text = _SPACES.sub(" ", text)
    text = _BLANK_LINES.sub("\n\n", text)
    return text.strip()


def split_text(text: str, size: int, overlap: int) -> list[str]:
    """Windows of at most ``size`` characters, each starting ``overlap``
    characters before the previous one ended; cuts fall on whitespace
    where there is some in the second half of a window."""
    if size <= 0 or overlap < 0 or overlap >= size:
        raise ValueError("need 0 <= overlap < size")
    pieces: list[str] = []
    start, length = 0, len(text)
    while start < length:
        end = min(start + size, length)
        if end < length:
            cut = text.rfind(" ", start + size // 2, end)
            cut = max(cut, text.rfind("\n", start + size // 2, end))
            if cut > start:
                end = cut
        piece = text[start:end].strip()
        if piece:
            pieces.append(piece)
        if end >= length:
            break
        nxt = end - overlap
        if overlap:
            space = text.find(" ", nxt, end)
            nxt = space + 1 if space != -1 else nxt
        start = max(nxt, start + 1)
    return pieces


def chunk_pages(pages: list[str], size: int, overlap: int) -> list[Chunk]:
    """Chunks of every page, in order; pages without text give none."""
    chunks: list[Chunk] = []
    for number, text in enumerate(pages, start=1):
        for piece in split_text(normalise(text), size, overlap):
            chunks.append(Chunk(text=piece, page=number))
    return chunks
