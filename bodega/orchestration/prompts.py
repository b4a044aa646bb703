"""The prompt of each role: the user's messages plus the earlier outputs and
one short instruction. Every template is here, so they read side by side."""

from __future__ import annotations

from collections.abc import Sequence

from ipc.messages import ChatMessage

CRITIC = (
    "Critique the answer above: point out its errors, omissions and unclear parts, "
    "briefly. Do not rewrite it."
)
REVISER = (
    "A reviewer critiqued your answer:\n\n{critique}\n\n"
    "Write the improved answer, taking the critique into account. Reply with the answer only."
)
DEBATER = (
    "The debate so far:\n\n{transcript}\n\n"
    "You are debater {number}. Give your answer to the question, answering the other "
    "side's points where you disagree."
)
JUDGE = (
    "Debate transcript:\n\n{transcript}\n\n"
    "As the judge, weigh the arguments and give the final answer to the question. "
    "Reply with the answer only."
)
AGGREGATOR = (
    "Candidate answers:\n\n{candidates}\n\n"
    "If one candidate is best, reply with `PICK <number>` and nothing else. Otherwise reply "
    "`MERGE` on the first line, then one answer that combines the candidates' strengths."
)
STAGE = (
    "The previous stage's output:\n\n{previous}\n\n"
    "Take it as your input: improve it into a better answer to the conversation above. "
    "Reply with the answer only."
)


def _ask(history: Sequence[ChatMessage], text: str) -> list[ChatMessage]:
    return [*history, ChatMessage(role="user", content=text)]


def drafter(history: Sequence[ChatMessage]) -> list[ChatMessage]:
    """The drafter answers the conversation as it stands."""
    return list(history)


def critic(history: Sequence[ChatMessage], draft: str) -> list[ChatMessage]:
    """The critic sees the draft as the assistant's answer and critiques it."""
    return _ask([*history, ChatMessage(role="assistant", content=draft)], CRITIC)


def reviser(history: Sequence[ChatMessage], draft: str, critique: str) -> list[ChatMessage]:
    """The drafter revises its draft in the light of the critique."""
    answered = [*history, ChatMessage(role="assistant", content=draft)]
    return _ask(answered, REVISER.format(critique=critique))


def transcript(turns: Sequence[tuple[int, str]]) -> str:
    """Debate turns as ``[Debater n]: text`` paragraphs."""
    return "\n\n".join(f"[Debater {number}]: {text}" for number, text in turns)


def debater(
    history: Sequence[ChatMessage], number: int, turns: Sequence[tuple[int, str]]
) -> list[ChatMessage]:
    """Debater ``number`` (1-based): the question alone in the first round,
    then the transcript of the rounds before."""
    if not turns:
        return list(history)
    return _ask(history, DEBATER.format(transcript=transcript(turns), number=number))


def judge(history: Sequence[ChatMessage], turns: Sequence[tuple[int, str]]) -> list[ChatMessage]:
    """The judge reads the whole debate and answers."""
    return _ask(history, JUDGE.format(transcript=transcript(turns)))


def aggregator(history: Sequence[ChatMessage], answers: Sequence[str]) -> list[ChatMessage]:
    """The aggregator sees the members' answers, numbered from 1."""
    candidates = "\n\n".join(f"[{i}] {text}" for i, text in enumerate(answers, 1))
    return _ask(history, AGGREGATOR.format(candidates=candidates))


def stage(history: Sequence[ChatMessage], previous: str | None) -> list[ChatMessage]:
    """A pipeline stage: the first answers the conversation, each later one
    takes the previous stage's output as its input."""
    if previous is None:
        return list(history)
    return _ask(history, STAGE.format(previous=previous))
