"""Language models on MLX through mlx-lm, with continuous batching.

MLX must be driven from one thread, so one scheduler thread (``mlx_scheduler``)
loads the model and is the only one to touch it; ``generate`` runs on the
runtime's thread of each request: it prepares the request, queues it and
relays its tokens (stop strings, parsers, finish reason).
"""

from __future__ import annotations

import functools
import queue
import threading
from typing import Any

from catalog.options import LoadOptions
from handlers.engine_protocol import Emit, EngineError, LoadError, ShouldStop
from handlers.lm.chat_output import OutputStream
from handlers.lm.chat_request import PreparedChat, prepare_chat
from handlers.lm.chat_template import ChatTemplate
from handlers.lm.constraints import to_regex
from handlers.lm.mlx_guided import EosGate, GuidedLogits, TokenTable, seeded
from handlers.lm.mlx_loading import check_same_tokenizer, load_model, mlx_memory, resolve_model_dir
from handlers.lm.mlx_scheduler import Job, Loaded, Scheduler
from handlers.lm.request_checks import (
    PENALTY_WINDOW,
    check_logit_bias,
    constraint_param,
    eos_rules,
    finish_reason,
    token_budget,
)
from handlers.lm.stop_text import StopTextFilter
from handlers.parsing.pattern import Lit, seq
from ipc.messages import EngineCounters, EngineMemory, Finished, Generate, Sampling, Usage

DEFAULT_CONTEXT_LENGTH = 32768
PROMPT_CACHE_BYTES = 2 << 30  # bound on the KV bytes the prompt cache keeps
CLOSE_WAIT_SECONDS = 5.0


def sampler_settings(sampling: Sampling) -> dict[str, Any]:
    """mlx-lm's ``make_sampler`` arguments for ``sampling``: exactly its values
    (top_k 0 and min_p 0.0 are off, as on llama.cpp)."""
    return {
        "temp": sampling.temperature,
        "top_p": sampling.top_p,
        "min_p": sampling.min_p,
        "top_k": sampling.top_k,
    }


@functools.lru_cache(maxsize=64)
def shared_sampler(temp: float, top_p: float, min_p: float, top_k: int) -> Any:
    """One sampler object per setting: mlx-lm's BatchGenerator samples the
    whole batch in one call only when its rows share the very same sampler
    (8 streams: one argmax instead of eight). Unseeded samplers are stateless."""
    from mlx_lm.sample_utils import make_sampler

    return make_sampler(temp=temp, top_p=top_p, min_p=min_p, top_k=top_k)


def penalty_settings(sampling: Sampling) -> dict[str, Any]:
    """mlx-lm's ``make_logits_processors`` penalty arguments for ``sampling``,
    over llama.cpp's window; neutral penalties add no processor."""
    return {
        "repetition_penalty": (
            None if sampling.repetition_penalty == 1.0 else sampling.repetition_penalty
        ),
        "repetition_context_size": PENALTY_WINDOW,
        "presence_penalty": sampling.presence_penalty or None,
        "presence_context_size": PENALTY_WINDOW,
        "frequency_penalty": sampling.frequency_penalty or None,
        "frequency_context_size": PENALTY_WINDOW,
    }


class MlxEngine:
    """An mlx-lm model behind the handler runtime's Engine protocol."""

    name = "mlx"

    def __init__(self, spec: LoadOptions) -> None:
        self.parallel = max(1, spec.max_concurrency)
        self._spec = spec
        self._scheduler: Scheduler | None = None
        loaded: queue.SimpleQueue[BaseException | None] = queue.SimpleQueue()
        self._thread = threading.Thread(
            target=self._run, args=(loaded,), name="mlx-scheduler", daemon=True
        )
        self._thread.start()
        error = loaded.get()
        if error is not None:
            raise error

    def _run(self, loaded: queue.SimpleQueue[BaseException | None]) -> None:
        """The scheduler thread: load the model, then serve until closed."""
        try:
            scheduler = Scheduler(self._load(self._spec), self.parallel)
        except BaseException as exc:
            loaded.put(exc)
            return
        self._scheduler = scheduler
        loaded.put(None)
        scheduler.run()

    def _load(self, spec: LoadOptions) -> Loaded:
        model, self._tokenizer, folder = load_model(spec)
        hf = self._tokenizer._tokenizer
        self._template = ChatTemplate(
            getattr(self._tokenizer, "chat_template", None) or hf.chat_template,
            bos_token=hf.bos_token or "",
            eos_token=hf.eos_token or "",
        )
        self._tokens = TokenTable(hf, list(self._tokenizer.eos_token_ids))
        config_ctx = _config_context_length(folder)
        self.context_length = spec.context_length or min(
            config_ctx or DEFAULT_CONTEXT_LENGTH, DEFAULT_CONTEXT_LENGTH
        )
        draft = None
        if spec.draft_model_path:
            from mlx_lm import load

            draft_folder = resolve_model_dir(spec.draft_model_path)
            draft, draft_tokenizer = load(str(draft_folder))  # type: ignore[misc]
            check_same_tokenizer(self._tokenizer, draft_tokenizer)
        self._has_draft = draft is not None
        from mlx_lm.models.cache import LRUPromptCache

        return Loaded(
            model=model,
            tokenizer=self._tokenizer,
            table=self._tokens,
            model_key=str(folder),
            draft=draft,
            num_draft_tokens=spec.num_draft_tokens or 3,
            prompt_cache=(
                LRUPromptCache(max_size=spec.prompt_cache_size, max_bytes=PROMPT_CACHE_BYTES)
                if spec.prompt_cache_size > 0
                else None
            ),
        )

    # --- runtime side (one thread per in-flight request) -----------------

    def generate(self, request: Generate, emit: Emit, should_stop: ShouldStop) -> Finished:
        """Queue the request for the scheduler and relay its tokens."""
        assert self._scheduler is not None
        with self._scheduler.preparing():
            job, prepared, min_tokens = self._job(request)
            self._scheduler.submit(job)
        output = OutputStream(emit, prepared.parser if prepared else None)
        stop = StopTextFilter(request.stop)
        completion_tokens, ended = self._relay(job, min_tokens, stop, output, should_stop)
        cancelled = ended == "cancelled"
        if not cancelled:
            output.close()
        parses_tools = prepared is not None and prepared.parses_tools
        return Finished(
            req_id=request.req_id,
            reason=finish_reason(
                ended, cancelled=cancelled, tool_calls=parses_tools and output.tool_calls > 0
            ),
            usage=Usage(
                prompt_tokens=len(job.tokens),
                completion_tokens=completion_tokens,
                cached_tokens=job.cached_tokens,
            ),
            stop_sequence=stop.matched,
        )

    def _job(self, request: Generate) -> tuple[Job, PreparedChat | None, int]:
        """The scheduler's job for ``request``, its prepared chat and min_tokens."""
        prepared = None
        if request.messages is not None:
            prepared = prepare_chat(request, self._template, self._spec)
            tokens = list(
                self._tokenizer._tokenizer.encode(prepared.prompt, add_special_tokens=False)
            )
        else:
            tokens = list(self._tokenizer.encode(request.prompt or ""))
        max_tokens = token_budget(request, len(tokens), self.context_length)
        processors = self._logits_processors(request)
        constrained = prepared is not None and prepared.constraint is not None
        if prepared is not None and constrained:
            if self._has_draft:
                raise EngineError(
                    "constrained output (response_format, tool_choice) is not available "
                    "with a draft model",
                    param="response_format" if request.response_format else "tool_choice",
                )
            processors.append(self._guided(prepared, constraint_param(request)))
        ignore_eos, min_tokens = eos_rules(request, constrained)
        if ignore_eos or min_tokens:
            eos = list(self._tokenizer.eos_token_ids)
            processors.append(EosGate(eos, min_tokens=min_tokens, always=ignore_eos))
        job = Job(
            tokens=tokens,
            max_tokens=max_tokens,
            sampler=self._sampler(request.sampling),
            logits_processors=processors,
            top_logprobs=request.top_logprobs if request.logprobs else -1,
        )
        return job, prepared, min_tokens

    def _relay(
        self,
        job: Job,
        min_tokens: int,
        stop: StopTextFilter,
        output: OutputStream,
        should_stop: ShouldStop,
    ) -> tuple[int, str | None]:
        """Hand the job's tokens to ``output`` until it ends: (completion
        tokens, "length" | "stop" | "cancelled"). Stop strings are looked for
        only after ``min_tokens`` tokens (as on llama.cpp)."""
        completion_tokens = 0
        while True:
            if should_stop() and not job.cancelled.is_set():
                job.cancelled.set()
            kind, value = job.events.get()
            if kind == "error":
                raise RuntimeError(f"generation failed: {value}")
            if kind == "cancelled":
                return completion_tokens, "cancelled"
            text, finish, logprob = value
            if finish == "stop":
                logprob = None  # the end-of-sequence token is not part of the answer
            else:
                completion_tokens += 1
            if completion_tokens <= min_tokens and finish != "stop":
                out, hit = text, False
            else:
                out, hit = stop.feed(text)
            if finish is not None and not hit:
                out += stop.flush()
            if not job.cancelled.is_set():
                counted = 0 if finish == "stop" else 1
                output.add(out, counted, [logprob] if logprob is not None else None)
            if hit:
                job.cancelled.set()  # the scheduler drops it at the next step
                return completion_tokens, "stop"
            if finish is not None:
                return completion_tokens, "length" if finish == "length" else "stop"

    def _sampler(self, sampling: Sampling) -> Any:
        settings = sampler_settings(sampling)
        if sampling.seed is not None:
            from mlx_lm.sample_utils import make_sampler

            return seeded(make_sampler(**settings), sampling.seed)
        return shared_sampler(**settings)

    def _logits_processors(self, request: Generate) -> list[Any]:
        from mlx_lm.sample_utils import make_logits_processors

        check_logit_bias(request.logit_bias, len(self._tokens.pieces))
        return list(
            make_logits_processors(
                logit_bias=request.logit_bias or None, **penalty_settings(request.sampling)
            )
        )

    def _guided(self, prepared: PreparedChat, param: str) -> GuidedLogits:
        """The constraint of ``prepared`` as a logits processor."""
        table = self._tokens
        if prepared.answer is None or prepared.reasoning_end is None:
            assert prepared.constraint is not None
            return GuidedLogits(table.index(to_regex(prepared.constraint, param)))
        forced = seq(Lit(prepared.reasoning_end), prepared.answer)
        return GuidedLogits(
            table.index(to_regex(prepared.answer, param)),
            table=table,
            free_until=prepared.reasoning_end,
            budget=prepared.reasoning_budget,
            forced=table.index(to_regex(forced, param)),
        )

    # --- the rest of the Engine protocol ---------------------------------

    def counters(self) -> EngineCounters:
        """Speculative decoding's tokens and acceptances (zero without a draft)."""
        scheduler = self._scheduler
        if scheduler is None or self._spec.draft_model_path is None:
            return EngineCounters()
        return EngineCounters(
            spec_tokens=scheduler.spec_tokens,
            spec_accepted=scheduler.spec_accepted,
            spec_draft_length=self._spec.num_draft_tokens or 3,
        )

    def memory(self) -> EngineMemory:
        """MLX's active, cache and peak memory."""
        return mlx_memory()

    def close(self) -> None:
        """Stop the scheduler thread and wait for it to leave the model."""
        if self._scheduler is not None:
            self._scheduler.close()
        self._thread.join(CLOSE_WAIT_SECONDS)


def _config_context_length(folder: Any) -> int | None:
    import json
    from pathlib import Path

    try:
        config = json.loads((Path(folder) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    value = config.get("max_position_embeddings")
    return int(value) if value else None


__all__ = ["LoadError", "MlxEngine"]
