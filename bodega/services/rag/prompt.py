"""The grounded prompt: retrieved chunks (with their pages) and the question."""

from __future__ import annotations

from ipc.messages import ChatMessage

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
