"""Prompts and answers in the log, only with ``--log-prompts`` (off by default)."""

from __future__ import annotations

import logging

import msgspec

from ipc.messages import Delta, Generate, HandlerMessage, WorkMessage

prompt_log = logging.getLogger("bodega.prompts")


class PromptLog:
    """Logs one request's prompt, then its answer once it ends."""

    def __init__(self, model_id: str, message: WorkMessage) -> None:
        self.model_id = model_id
        self.active = isinstance(message, Generate)
        self._parts: list[str] = []
        if isinstance(message, Generate):
            prompt = message.prompt if message.prompt is not None else message.messages
            text = prompt if isinstance(prompt, str) else msgspec.json.encode(prompt).decode()
            prompt_log.info("model=%s prompt=%s", model_id, text)

    def frame(self, frame: HandlerMessage) -> None:
        """Keep the text of a ``Delta``."""
        if self.active and type(frame) is Delta:
            self._parts.append(frame.text)

    def finished(self) -> None:
        """Log the answer so far."""
        if self.active:
            prompt_log.info("model=%s answer=%s", self.model_id, "".join(self._parts))
