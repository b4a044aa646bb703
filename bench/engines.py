"""The llama.cpp engine driven in-process, exactly as ``handlers/lm_llamacpp.py`` drives it.

``InProcessEngine`` gets its ``xllamacpp.Server`` from the handler's own
``LlamaCppEngine`` built from the very ``LoadOptions`` the server would send
(``bodega.registry.handler.load_spec``), so parameters cannot drift; should
that class change shape, ``engine_params`` mirrors the ``CommonParams`` it
builds. ``engine_body`` mirrors the body the handler hands to llama.cpp for
an HTTP chat request: the handler renders the prompt with its own chat
template and calls ``handle_completions``, and so does ``stream`` (with the
mirror, which has no template, it calls ``handle_chat_completions``). The
only difference from the server side is then the server.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bodega.settings import ModelSpec

from .timing import Stream


def engine_params(model_path: str, context_length: int, parallel: int) -> Any:
    """``xllamacpp.CommonParams`` as ``LlamaCppEngine.__init__`` sets them."""
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = model_path
    params.n_ctx = context_length * parallel
    params.n_parallel = parallel
    params.cont_batching = True
    params.use_jinja = True
    params.cache_prompt = True
    params.warmup = False
    params.cpuparams.n_threads = max(1, os.cpu_count() or 1)
    params.cpuparams_batch.n_threads = params.cpuparams.n_threads
    return params


def engine_body(prompt: str, max_tokens: int) -> dict[str, Any]:
    """The body ``LlamaCppEngine.generate`` builds for a streamed chat request.

    The HTTP request carries ``temperature: 0`` and ``max_tokens``; every other
    sampling field is unset and so left out, as the handler leaves it out.
    """
    return {
        "stream": True,
        "stream_options": {"include_usage": True},
        "cache_prompt": True,
        "temperature": 0.0,
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": prompt}],
    }


@contextmanager
def native_stderr_to(path: Path) -> Iterator[None]:
    """Send file descriptor 2 (llama.cpp's log) to ``path``; Python's stderr stays put.

    The server's handlers log to a file as well, so both sides pay the same
    logging cost and the terminal stays readable.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    python_stderr = sys.stderr
    log_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        sys.stderr = open(os.dup(saved), "w", buffering=1)
        os.dup2(log_fd, 2)
        yield
    finally:
        os.dup2(saved, 2)
        sys.stderr.close()
        sys.stderr = python_stderr
        os.close(saved)
        os.close(log_fd)


class InProcessEngine:
    """An ``xllamacpp.Server`` in this process; ``stream`` times one chat request.

    ``source`` says where its parameters came from: ``handler`` (the handler's
    own engine class) or ``mirror`` (``engine_params``).
    """

    def __init__(self, spec: ModelSpec) -> None:
        self._owner: Any = None
        self._server: Any = None
        try:
            from bodega.registry.handler import load_spec
            from bodega.registry.options import resolve_engine
            from handlers.lm.llamacpp_engine import LlamaCppEngine

            self._owner = LlamaCppEngine(load_spec(spec, resolve_engine(spec)))
            self._server = self._owner._server
            self.source = "handler"
        except (ImportError, AttributeError, TypeError):
            import xllamacpp

            if self._owner is not None:
                self._owner.close()
                self._owner = None
            context = spec.context_length or 4096
            params = engine_params(spec.model_path, context, max(1, spec.max_concurrency))
            self._server = xllamacpp.Server(params)
            self.source = "mirror"

    def stream(self, prompt: str, max_tokens: int, timeout: float = 60.0) -> Stream:
        """Run one streamed chat completion; blocks the calling thread.

        Past ``timeout`` seconds the request is stopped and marked timed out.
        """
        body = engine_body(prompt, max_tokens)
        result = Stream()
        call = self._server.handle_chat_completions

        def on_chunk(chunk: dict[str, Any]) -> bool:
            now = time.perf_counter()
            if now - result.t_send > timeout:
                result.error = f"timed out after {timeout:.0f} s"
                return True
            if "error" in chunk:
                result.error = str(chunk["error"])
                return True
            usage = chunk.get("usage")
            if usage:
                result.completion_tokens = int(usage.get("completion_tokens", 0))
                details = usage.get("prompt_tokens_details") or {}
                result.cached_tokens = int(details.get("cached_tokens", 0))
            timings = chunk.get("timings")
            if timings and timings.get("predicted_per_second"):
                result.engine_tps = float(timings["predicted_per_second"])
            if timings and timings.get("prompt_ms") is not None:
                result.engine_prompt_ms = float(timings["prompt_ms"])
            for choice in chunk.get("choices") or ():
                if choice.get("finish_reason"):
                    result.finish_reason = str(choice["finish_reason"])
                content = (choice.get("delta") or {}).get("content") or choice.get("text")
                if content:
                    result.content_event(now)
            return False

        result.t_send = time.perf_counter()
        if self._owner is not None:
            body["prompt"] = self._render(body.pop("messages"))
            call = self._server.handle_completions
        reply = call(body, on_chunk)
        result.t_done = time.perf_counter()
        if isinstance(reply, dict) and "error" in reply:
            result.error = str(reply["error"])
        return result

    def _render(self, messages: list[dict[str, str]]) -> str:
        """The prompt exactly as the handler renders it."""
        from handlers.lm.chat_request import prepare_chat
        from ipc.messages import ChatMessage, Generate

        chat = [ChatMessage(role=m["role"], content=m["content"]) for m in messages]
        request = Generate(req_id=0, messages=chat)
        return prepare_chat(request, self._owner._template, self._owner._spec).prompt

    def close(self) -> None:
        """Stop llama.cpp's loop and free the model."""
        self._server = None
        if self._owner is not None:
            self._owner.close()
            self._owner = None
