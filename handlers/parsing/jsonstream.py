"""Stream a tool call's JSON arguments while checking them, so what streams stays valid.

Each character is checked against the JSON grammar before it is released; a
comma is held until the next token shows it is not a trailing comma (which is
then dropped). At the first character that cannot continue valid JSON the
stream stops releasing and keeps the raw text; ``close`` then repairs: it
parses the whole raw text leniently (Python literals such as ``True`` or
single quotes) and releases the rest of its canonical form when that extends
what was already released, or else closes what was released.
"""

from __future__ import annotations

import ast
import re
from typing import Any

from .jsontext import completion, dumps, loads

_WS = " \t\r\n"
_LITERALS = {"t": "rue", "f": "alse", "n": "ull"}
# number automaton: state -> [(character class, next state)]; accepting end states
_NUM: dict[str, list[tuple[str, str]]] = {
    "start": [("-", "minus"), ("0", "zero"), ("123456789", "int")],
    "minus": [("0", "zero"), ("123456789", "int")],
    "zero": [(".", "dot"), ("eE", "exp")],
    "int": [("0123456789", "int"), (".", "dot"), ("eE", "exp")],
    "dot": [("0123456789", "frac")],
    "frac": [("0123456789", "frac"), ("eE", "exp")],
    "exp": [("+-", "sign"), ("0123456789", "edig")],
    "sign": [("0123456789", "edig")],
    "edig": [("0123456789", "edig")],
}
_NUM_END = {"zero", "int", "frac", "edig"}


class _Validator:
    """A JSON-object prefix checker, one character at a time."""

    def __init__(self) -> None:
        self.stack: list[str] = []
        self.state = "top"
        self.done = False
        self._key = False
        self._escape = False
        self._hex = 0
        self._literal = ""
        self._num = ""
        self._comma = False

    def accept(self, ch: str) -> bool:
        """Take ``ch`` if it can continue valid JSON."""
        state = self.state
        if state == "string":
            if self._hex:
                if ch not in "0123456789abcdefABCDEF":
                    return False
                self._hex -= 1
            elif self._escape:
                if ch not in '"\\/bfnrtu':
                    return False
                self._escape = False
                self._hex = 4 if ch == "u" else 0
            elif ch == "\\":
                self._escape = True
            elif ch == '"':
                self.state = "colon" if self._key else "after"
            elif ord(ch) < 0x20:
                return False
            return True
        if state == "number":
            for chars, nxt in _NUM[self._num]:
                if ch in chars:
                    self._num = nxt
                    return True
            if self._num not in _NUM_END:
                return False
            self.state = "after"
            return self.accept(ch)
        if state == "literal":
            if not self._literal or ch != self._literal[0]:
                return False
            self._literal = self._literal[1:]
            if not self._literal:
                self.state = "after"
            return True
        if ch in _WS:
            return True
        if state == "top":
            if ch != "{":
                return False
            self.stack.append("}")
            self.state, self._comma = "key_or_end", False
            return True
        if state in ("key_or_end", "key"):
            if ch == "}" and state == "key_or_end":
                return self._pop(ch)
            if ch != '"':
                return False
            self.state, self._key = "string", True
            return True
        if state == "colon":
            if ch != ":":
                return False
            self.state, self._comma = "value", False
            return True
        if state in ("value", "value_or_end"):
            if ch == "]" and state == "value_or_end":
                return self._pop(ch)
            return self._value(ch)
        if state == "after":
            if ch == ",":
                self.state = "key" if self.stack[-1] == "}" else "value"
                self._comma = True
                return True
            if ch in "}]":
                return self._pop(ch)
            return False
        return False

    def _value(self, ch: str) -> bool:
        self._comma = False
        if ch == "{":
            self.stack.append("}")
            self.state = "key_or_end"
        elif ch == "[":
            self.stack.append("]")
            self.state = "value_or_end"
        elif ch == '"':
            self.state, self._key = "string", False
        elif ch in "-0123456789":
            self.state, self._num = "number", "start"
            return self.accept(ch)
        elif ch in _LITERALS:
            self.state, self._literal = "literal", _LITERALS[ch]
        else:
            return False
        return True

    def _pop(self, ch: str) -> bool:
        if not self.stack or self.stack[-1] != ch:
            return False
        self.stack.pop()
        self.state = "after"
        if not self.stack:
            self.done = True
        return True

    def close_after_comma(self, ch: str) -> bool:
        """A close right after a comma (a trailing comma): take it, the comma is dropped."""
        if self.state in ("key", "value") and self._comma and self.stack and ch == self.stack[-1]:
            self._comma = False
            return self._pop(ch)
        return False


class ArgsStream:
    """Releases the text of one JSON object as it arrives, checked (see the module doc)."""

    def __init__(self) -> None:
        self.raw = ""
        self.sent = ""
        self.broken = False
        self._check = _Validator()
        self._held = ""

    @property
    def done(self) -> bool:
        """The object closed validly."""
        return self._check.done

    def feed(self, text: str) -> tuple[str, int]:
        """(text to release, characters used); fewer used than given: the object closed."""
        if self.broken or self.done:
            self.raw += text if self.broken else ""
            return "", len(text) if self.broken else 0
        out: list[str] = []
        for i, ch in enumerate(text):
            if self._check.accept(ch):
                if ch == "," or (self._held and ch in _WS):
                    self._held += ch
                else:
                    out.append(self._held + ch)
                    self._held = ""
            elif self._check.close_after_comma(ch):
                self._held = ""
                out.append(ch)
            else:
                self.broken = True
                self.raw += text[:i]
                piece = "".join(out)
                self.sent += piece
                self.raw += text[i:]
                return piece, len(text)
            if self.done:
                piece = "".join(out)
                self.sent += piece
                self.raw += text[: i + 1]
                return piece, i + 1
        piece = "".join(out)
        self.sent += piece
        self.raw += text
        return piece, len(text)

    def close(self, raw: str | None = None) -> str:
        """The text that completes what was released into a valid JSON object.

        ``raw``: the whole raw arguments text, when the caller knows better
        where it ends (after a break, the stream cannot tell).
        """
        if self.done:
            return ""
        if self.broken:
            value = lenient_object(self.raw if raw is None else raw)
            text = _canonical(value)
            if text is not None and text.startswith(self.sent):
                return text[len(self.sent) :]
        if not self.sent:
            return "{}"
        return completion(self.sent)


def _canonical(value: dict[str, Any] | None) -> str | None:
    if value is None:
        return None
    try:
        return dumps(value)
    except (TypeError, ValueError):
        return None


_PY_WORDS = re.compile(r"\b(true|false|null)\b")


def lenient_object(raw: str) -> dict[str, Any] | None:
    """A JSON object from text that is JSON, a Python literal, or one with a stray ``}``."""
    text = raw.strip()
    candidates = [text]
    if text.endswith("}"):
        candidates.append(text[:-1].rstrip())
    for candidate in candidates:
        for parse in (_json, _python, _python_words):
            value = parse(candidate)
            if isinstance(value, dict):
                return value
    return None


def _json(text: str) -> Any:
    try:
        return loads(text)
    except ValueError:
        return None


def _python(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None


def _python_words(text: str) -> Any:
    words = {"true": "True", "false": "False", "null": "None"}
    return _python(_PY_WORDS.sub(lambda m: words[m.group(1)], text))
