"""Reasoning parsers: ``<think>...</think>`` families and harmony's analysis channel."""

from __future__ import annotations

from collections.abc import Callable

from .base import StreamParser
from .events import Content, Event, Reasoning, merge
from .harmony import HarmonyParser
from .pattern import Alt, FreeText, Lit, Pattern, Seq
from .text import partial_suffix

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


class ThinkParser:
    """``<think>reasoning</think>`` then the answer.

    Without ``starts_in_reasoning`` a ``<think>`` is recognised only at the
    start (after whitespace); output without one is all Content. With it, the
    output is reasoning until ``</think>`` (a repeated leading ``<think>`` is
    dropped), and all of it if ``</think>`` never comes. Newlines framing the
    reasoning and the newlines right after ``</think>`` are removed.
    """

    def __init__(self, starts_in_reasoning: bool = False) -> None:
        self._starts_in_reasoning = starts_in_reasoning
        self._state = "start"
        self._buffer = ""
        self._newlines = ""
        self._lead = True

    def feed(self, text: str) -> list[Event]:
        """Take the next piece of output."""
        self._buffer += text
        out: list[Event] = []
        self._run(out)
        return merge(out)

    def finish(self) -> list[Event]:
        """End of output: release what is held."""
        out: list[Event] = []
        rest, self._buffer = self._buffer, ""
        if self._state == "start":
            kind = Reasoning if self._starts_in_reasoning else Content
            out.append(kind(rest))
        elif self._state == "reasoning":
            out.append(Reasoning(self._newlines + rest))
        elif self._state == "content":
            out.append(Content(rest))
        self._newlines = ""
        return merge(out)

    def _run(self, out: list[Event]) -> None:
        while True:
            buffer = self._buffer
            if self._state == "start":
                s = buffer.lstrip()
                if s.startswith(THINK_OPEN):
                    self._buffer, self._state = s[len(THINK_OPEN) :], "reasoning"
                elif THINK_OPEN.startswith(s):
                    return
                else:
                    self._state = "reasoning" if self._starts_in_reasoning else "content"
            elif self._state == "reasoning":
                if self._lead:
                    buffer = buffer.lstrip("\n")
                    self._buffer = buffer
                    if not buffer:
                        return
                    self._lead = False
                i = buffer.find(THINK_CLOSE)
                if i >= 0:
                    out.append(Reasoning((self._newlines + buffer[:i]).rstrip("\n")))
                    self._newlines = ""
                    self._buffer, self._state = buffer[i + len(THINK_CLOSE) :], "after"
                    continue
                hold = len(buffer) - partial_suffix(buffer, (THINK_CLOSE,))
                seg = self._newlines + buffer[:hold]
                core = seg.rstrip("\n")
                self._newlines = seg[len(core) :]
                out.append(Reasoning(core))
                self._buffer = buffer[hold:]
                return
            elif self._state == "after":
                s = buffer.lstrip("\n")
                self._buffer = s
                if not s:
                    return
                self._state = "content"
            else:
                out.append(Content(buffer))
                self._buffer = ""
                return


def prompt_opens_reasoning(prompt: str) -> bool:
    """Whether a rendered prompt ends inside an open ``<think>``.

    Pass the answer as ``starts_in_reasoning``: true for templates that open the
    reasoning in the generation prompt (Qwen3 thinking-2507, DeepSeek-R1), false
    where the prompt closed it (``enable_thinking=False``) or never opened it.
    """
    i = prompt.rfind(THINK_OPEN)
    return i >= 0 and not prompt[i + len(THINK_OPEN) :].strip()


def _harmony_reasoning(starts_in_reasoning: bool = False) -> StreamParser:
    return HarmonyParser(None, tool_calls=False)


# Every name the Bodega docs list for ``reasoning_parser`` (qwen3_coder marks
# up tool calls only), and deepseek_r1: the ``<think>`` families share one parser.
REASONING_PARSERS: dict[str, Callable[[bool], StreamParser]] = {
    "qwen3": ThinkParser,
    "qwen3_moe": ThinkParser,
    "qwen3_next": ThinkParser,
    "qwen3_vl": ThinkParser,
    "glm4_moe": ThinkParser,
    "minimax_m2": ThinkParser,
    "deepseek_r1": ThinkParser,
    "harmony": _harmony_reasoning,
}


def _check(name: str) -> None:
    if name not in REASONING_PARSERS:
        valid = ", ".join(sorted(REASONING_PARSERS))
        raise ValueError(f"unknown reasoning parser {name!r}; valid: {valid}")


def reasoning_parser(name: str, *, starts_in_reasoning: bool = False) -> StreamParser:
    """A new reasoning parser; ``starts_in_reasoning`` when the prompt already opened it."""
    _check(name)
    return REASONING_PARSERS[name](starts_in_reasoning)


def reasoning_pattern(name: str, *, starts_in_reasoning: bool = False) -> Pattern | None:
    """Grammar of the optional reasoning section that may precede constrained output.

    With ``starts_in_reasoning`` the ``<think>`` is already in the prompt, so
    the section is the rest of it and is not optional.
    """
    _check(name)
    if name == "harmony":
        analysis = Seq(
            (Lit("<|channel|>analysis<|message|>"), FreeText("<"), Lit("<|end|><|start|>assistant"))
        )
        return Alt((analysis, Lit("")))
    if starts_in_reasoning:
        return Seq((FreeText("<"), Lit(THINK_CLOSE), Lit("\n\n")))
    think = Seq((Lit(THINK_OPEN), FreeText("<"), Lit(THINK_CLOSE), Lit("\n\n")))
    return Alt((think, Lit("")))
