"""The grounded prompt: retrieved chunks (with their pages) and the question."""

from __future__ import annotations

from ipc.messages import ChatMessage, Generate, Sampling

from .store import Hit

SYSTEM = (
    "You answer questions about a document using only the excerpts given. "
    "State facts exactly as the excerpts write them and say which page they are on. "
    "If the excerpts do not contain the answer, say that the document does not say."
)


def grounded_messages(filename: str, query: str, hits: list[Hit]) -> list[ChatMessage]:
    """Chat messages asking ``query`` over ``hits``, in page order."""
    ordered = sorted(hits, key=lambda h: (h.page, h.chunk))
    excerpts = "\n\n".join(f"[Page {h.page}] {h.text}" for h in ordered)
    user = f"Excerpts from {filename}:\n\n{excerpts}\n\nQuestion: {query}"
    return [ChatMessage(role="system", content=SYSTEM), ChatMessage(role="user", content=user)]


def grounded_request(
    filename: str,
    query: str,
    hits: list[Hit],
    *,
    max_tokens: int | None,
    temperature: float | None,
    seed: int | None,
) -> Generate:
    """The chat ``Generate`` that answers ``query`` from ``hits``."""
    sampling = Sampling(seed=seed)
    if temperature is not None:
        sampling.temperature = temperature
    return Generate(
        req_id=0,
        messages=grounded_messages(filename, query, hits),
        max_tokens=max_tokens,
        sampling=sampling,
    )
