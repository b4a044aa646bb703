"""Language models in GGUF files on llama.cpp, through the xllamacpp package.

xllamacpp runs llama.cpp's server loop in-process: it batches the requests it
is handed from several threads into shared decode steps (continuous batching
over ``n_parallel`` slots) and reuses each slot's KV cache by longest common
prefix (its prompt cache). Each call blocks its thread and streams chunks to a
callback; returning True from the callback stops that request.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from ipc.messages import Finished, FinishReason, Generate, LoadSpec, Usage

from .engine import ContextLengthExceeded, Emit, EngineError, LoadError, ShouldStop
from .gguf import GGUFError, read_metadata, trained_context_length

DEFAULT_CONTEXT_LENGTH = 32768


def _sampling_fields(request: Generate) -> dict[str, Any]:
    s = request.sampling
    fields: dict[str, Any] = {
        "temperature": s.temperature,
        "top_p": s.top_p,
        "top_k": s.top_k,
        "min_p": s.min_p,
        "seed": s.seed,
        "presence_penalty": s.presence_penalty,
        "frequency_penalty": s.frequency_penalty,
        "repeat_penalty": s.repetition_penalty,
    }
    return {k: v for k, v in fields.items() if v is not None}


class LlamaCppEngine:
    """A GGUF model served by llama.cpp with ``max_concurrency`` slots."""

    name = "llamacpp"

    def __init__(self, spec: LoadSpec) -> None:
        import xllamacpp

        path = Path(spec.model_path)
        try:
            meta = read_metadata(path)
        except (OSError, GGUFError) as exc:
            raise LoadError(f"cannot read GGUF file {path}: {exc}") from exc
        trained = trained_context_length(meta)
        self.context_length = spec.context_length or min(
            trained or DEFAULT_CONTEXT_LENGTH, DEFAULT_CONTEXT_LENGTH
        )
        self.parallel = max(1, spec.max_concurrency)

        params = xllamacpp.CommonParams()
        params.model.path = str(path)
        # Each slot gets the full context length; the KV cache is split evenly.
        params.n_ctx = self.context_length * self.parallel
        params.n_parallel = self.parallel
        params.cont_batching = True
        params.use_jinja = True
        params.cache_prompt = True
        params.warmup = False
        if not os.environ.get("BODEGA_ENGINE_LOGS"):
            params.verbosity = 1  # llama.cpp's per-request timing lines are noise in our log
        # llama.cpp also opens its own HTTP port on localhost; lock it with a
        # key nobody knows, so no local process can bypass our admission.
        params.api_keys = [secrets.token_hex(32)]
        params.cpuparams.n_threads = spec.n_threads or max(1, os.cpu_count() or 1)
        params.cpuparams_batch.n_threads = params.cpuparams.n_threads
        if spec.chat_template_file:
            try:
                params.chat_template = Path(spec.chat_template_file).read_text()
            except OSError as exc:
                raise LoadError(f"cannot read chat_template_file: {exc}") from exc
        try:
            self._server = xllamacpp.Server(params)
        except Exception as exc:  # the binding raises plain RuntimeError
            raise LoadError(f"llama.cpp could not load {path}: {exc}") from exc
        self._model_bytes = path.stat().st_size

    def generate(self, request: Generate, emit: Emit, should_stop: ShouldStop) -> Finished:
        """Run one chat or prompt completion, streaming each token to ``emit``."""
        body: dict[str, Any] = {
            "stream": True,
            "stream_options": {"include_usage": True},
            "cache_prompt": True,
            **_sampling_fields(request),
        }
        if request.max_tokens is not None:
            body["max_tokens"] = request.max_tokens
        if request.stop:
            body["stop"] = request.stop
        chat = request.messages is not None
        if chat:
            body["messages"] = [
                {"role": m.role, "content": m.content or ""} for m in request.messages or []
            ]
        else:
            body["prompt"] = request.prompt or ""

        # llama.cpp holds back text that may start a stop string and releases
        # it later in one chunk: count the tokens of every chunk meanwhile.
        state: dict[str, Any] = {
            "reason": None,
            "usage": None,
            "error": None,
            "tokens": 0,
            "pending": 0,
        }

        def on_chunk(chunk: dict[str, Any]) -> bool:
            if "error" in chunk:
                state["error"] = chunk["error"]
                return True
            if chunk.get("usage"):
                state["usage"] = chunk["usage"]
            for choice in chunk.get("choices") or ():
                text = (choice.get("delta") or {}).get("content") if chat else choice.get("text")
                if choice.get("finish_reason"):
                    state["reason"] = choice["finish_reason"]
                elif text is not None:
                    state["tokens"] += 1
                    state["pending"] += 1
                    if text:
                        emit(text, state["pending"])
                        state["pending"] = 0
            return should_stop()

        if chat:
            result = self._server.handle_chat_completions(body, on_chunk)
        else:
            result = self._server.handle_completions(body, on_chunk)
        if isinstance(result, dict) and "error" in result:
            state["error"] = result["error"]
        if state["error"] is not None:
            raise _request_error(state["error"], "messages" if chat else "prompt")

        usage = state["usage"] or {}
        completion_tokens = usage.get("completion_tokens", state["tokens"])
        reason: FinishReason
        if should_stop() and state["reason"] is None:
            reason = "cancelled"
        else:
            reason = "length" if state["reason"] == "length" else "stop"
        return Finished(
            req_id=request.req_id,
            reason=reason,
            usage=Usage(
                prompt_tokens=usage.get("prompt_tokens", 0),
                completion_tokens=completion_tokens,
                cached_tokens=(usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0),
            ),
        )

    def memory(self) -> dict[str, float]:
        """The size of the mapped weights; llama.cpp reports nothing finer."""
        return {"model_bytes": float(self._model_bytes)}

    def close(self) -> None:
        """Stop llama.cpp's loop and free the model."""
        del self._server


def _request_error(error: dict[str, Any], prompt_field: str) -> EngineError:
    message = str(error.get("message", "llama.cpp rejected the request"))
    if error.get("type") == "exceed_context_size_error":
        return ContextLengthExceeded(
            f"This model's maximum context length is {error.get('n_ctx')} tokens, "
            f"but the prompt has {error.get('n_prompt_tokens')} tokens. "
            "Shorten the prompt or load the model with a larger context_length.",
            param=prompt_field,
        )
    return EngineError(message)
