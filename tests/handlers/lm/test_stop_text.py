"""Stop sequences on streamed text (pure Python)."""

from __future__ import annotations

import pytest

from handlers.lm.stop_text import StopTextFilter


def run(stops: list[str], pieces: list[str]) -> tuple[str, bool]:
    f = StopTextFilter(stops)
    out = []
    for piece in pieces:
        text, hit = f.feed(piece)
        out.append(text)
        if hit:
            return "".join(out), True
    return "".join(out) + f.flush(), False


@pytest.mark.parametrize(
    ("stops", "pieces", "expected"),
    [
        ([], ["a", "b"], ("ab", False)),
        (["Paris"], ["The capital is ", "Par", "is."], ("The capital is ", True)),
        (["\n\n"], ["one\n", "\ntwo"], ("one", True)),
        (["xyz"], ["x", "y", "a"], ("xya", False)),
        (["end"], ["the e", "n"], ("the en", False)),
        (["ab", "b"], ["cab"], ("c", True)),
        (["STOP"], ["aSTOPb"], ("a", True)),
    ],
)
def test_stop_text(stops: list[str], pieces: list[str], expected: tuple[str, bool]) -> None:
    assert run(stops, pieces) == expected


def test_held_text_is_not_released_early() -> None:
    f = StopTextFilter(["Paris"])
    assert f.feed("in Par") == ("in ", False)
    assert f.feed("ty") == ("Party", False)


@pytest.mark.parametrize(
    ("stops", "pieces", "matched"),
    [
        (["b", "ab"], ["cab"], "ab"),  # the earliest in the text
        (["ab", "a"], ["ca", "b"], "a"),  # "a" is whole at the first piece
        (["x", "Paris"], ["Par", "is"], "Paris"),
        (["zz"], ["a", "b"], ""),
    ],
)
def test_the_stop_that_matched_is_named(stops: list[str], pieces: list[str], matched: str) -> None:
    f = StopTextFilter(stops)
    for piece in pieces:
        if f.feed(piece)[1]:
            break
    assert f.matched == matched
