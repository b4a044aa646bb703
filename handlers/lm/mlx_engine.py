"""Language models on MLX through mlx-lm, with continuous batching.

MLX must be driven from one thread, so one scheduler thread owns the model:
it admits new requests into an mlx-lm ``BatchGenerator`` between decode steps,
removes cancelled ones at the next step, and hands each request's tokens to
the runtime thread that waits in ``generate``. Prompt KV caches are kept in an
LRU keyed by token prefix and reused by longest common prefix. With a draft
model (speculative decoding) or a single slot, requests are decoded one at a
time by ``stream_generate``.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field
from typing import Any

from catalog.options import LoadOptions
from handlers.engine_protocol import ContextLengthExceeded, Emit, EngineError, LoadError, ShouldStop
from handlers.lm.chat_output import OutputStream
from handlers.lm.chat_request import PreparedChat, prepare_chat
from handlers.lm.chat_template import ChatTemplate
from handlers.lm.constraints import to_regex
from handlers.lm.detokenize import IncrementalDecoder
from handlers.lm.mlx_guided import GuidedLogits, TokenTable, seeded, token_logprob
from handlers.lm.mlx_loading import check_same_tokenizer, load_model, mlx_memory, resolve_model_dir
from handlers.lm.stop_text import StopTextFilter
from handlers.parsing.pattern import Lit, seq
from ipc.messages import EngineMemory, Finished, FinishReason, Generate, TokenLogprob, Usage

DEFAULT_CONTEXT_LENGTH = 32768
DEFAULT_MAX_TOKENS = 4096
PROMPT_CACHE_BYTES = 2 << 30  # bound on the KV bytes the prompt cache keeps
IDLE_WAIT_SECONDS = 0.1


@dataclass
class _Job:
    """One request as the scheduler sees it."""

    tokens: list[int]
    max_tokens: int
    sampler: Any
    logits_processors: list[Any]
    # -1: no log-probabilities; n >= 0: the chosen token's and the top n.
    top_logprobs: int = -1
    events: queue.SimpleQueue[tuple[str, Any]] = field(default_factory=queue.SimpleQueue)
    cancelled: threading.Event = field(default_factory=threading.Event)
    cached_tokens: int = 0


class MlxEngine:
    """An mlx-lm model behind the handler runtime's Engine protocol."""

    name = "mlx"

    def __init__(self, spec: LoadOptions) -> None:
        self.parallel = max(1, spec.max_concurrency)
        self._num_draft_tokens = spec.num_draft_tokens or 3
        self._inbox: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._closed = False
        # MLX arrays and streams belong to the thread that made them: the
        # scheduler thread loads the model and is the only one to touch it.
        loaded: queue.SimpleQueue[BaseException | None] = queue.SimpleQueue()
        self._scheduler = threading.Thread(
            target=self._run, args=(spec, loaded), name="mlx-scheduler", daemon=True
        )
        self._scheduler.start()
        error = loaded.get()
        if error is not None:
            raise error

    def _load(self, spec: LoadOptions) -> None:
        self._model, self._tokenizer, folder = load_model(spec)
        self._model_key = str(folder)
        self._spec = spec
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
        self._draft = None
        if spec.draft_model_path:
            from mlx_lm import load

            draft_folder = resolve_model_dir(spec.draft_model_path)
            self._draft, draft_tokenizer = load(str(draft_folder))  # type: ignore[misc]
            check_same_tokenizer(self._tokenizer, draft_tokenizer)
        from mlx_lm.models.cache import LRUPromptCache

        self._prompt_cache = (
            LRUPromptCache(max_size=spec.prompt_cache_size, max_bytes=PROMPT_CACHE_BYTES)
            if spec.prompt_cache_size > 0
            else None
        )

    # --- runtime side (one thread per in-flight request) -----------------

    def generate(self, request: Generate, emit: Emit, should_stop: ShouldStop) -> Finished:
        """Queue the request for the scheduler and relay its tokens."""
        prepared = None
        if request.messages is not None:
            prepared = prepare_chat(request, self._template, self._spec)
            tokens = list(
                self._tokenizer._tokenizer.encode(prepared.prompt, add_special_tokens=False)
            )
        else:
            tokens = list(self._tokenizer.encode(request.prompt or ""))
        processors = self._logits_processors(request)
        if prepared is not None and prepared.constraint is not None:
            if self._draft is not None:
                raise EngineError(
                    "constrained output (response_format, tool_choice) is not available "
                    "with a draft model",
                    param="response_format" if request.response_format else "tool_choice",
                )
            processors.append(self._guided(prepared))
        max_tokens = request.max_tokens or min(
            DEFAULT_MAX_TOKENS, self.context_length - len(tokens)
        )
        field_name = "messages" if request.messages is not None else "prompt"
        if len(tokens) + max_tokens > self.context_length:
            raise ContextLengthExceeded(
                f"This model's maximum context length is {self.context_length} tokens, but "
                f"the prompt has {len(tokens)} tokens and max_tokens asks for {max_tokens} "
                "more. Shorten the prompt, lower max_tokens, or load the model with a larger "
                "context_length.",
                param=field_name,
            )
        job = _Job(
            tokens=tokens,
            max_tokens=max_tokens,
            sampler=self._sampler(request),
            logits_processors=processors,
            top_logprobs=request.top_logprobs if request.logprobs else -1,
        )
        stop = StopTextFilter(request.stop)
        output = OutputStream(emit, prepared.parser if prepared else None)
        self._inbox.put(job)
        completion_tokens = 0
        reason: FinishReason = "stop"
        while True:
            if should_stop() and not job.cancelled.is_set():
                job.cancelled.set()
            kind, value = job.events.get()
            if kind == "error":
                raise RuntimeError(f"generation failed: {value}")
            if kind == "cancelled":
                reason = "cancelled"
                break
            text, finish, logprob = value
            if finish == "stop":
                logprob = None  # the end-of-sequence token is not part of the answer
            else:
                completion_tokens += 1
            out, hit = stop.feed(text)
            if finish is not None and not hit:
                out += stop.flush()
            if not job.cancelled.is_set():
                counted = 0 if finish == "stop" else 1
                output.add(out, counted, [logprob] if logprob is not None else None)
            if hit:
                job.cancelled.set()  # the scheduler drops it at the next step
                reason = "stop"
                break
            if finish is not None:
                reason = "length" if finish == "length" else "stop"
                break
        if reason != "cancelled":
            output.close()
            if reason == "stop" and prepared is not None and prepared.parses_tools:
                reason = "tool_calls" if output.tool_calls else "stop"
        return Finished(
            req_id=request.req_id,
            reason=reason,
            usage=Usage(
                prompt_tokens=len(tokens),
                completion_tokens=completion_tokens,
                cached_tokens=job.cached_tokens,
            ),
        )

    def _sampler(self, request: Generate) -> Any:
        from mlx_lm.sample_utils import make_sampler

        s = request.sampling
        sampler = make_sampler(
            temp=0.7 if s.temperature is None else s.temperature,
            top_p=1.0 if s.top_p is None else s.top_p,
            min_p=s.min_p or 0.0,
            top_k=s.top_k or 0,
        )
        return seeded(sampler, s.seed) if s.seed is not None else sampler

    def _logits_processors(self, request: Generate) -> list[Any]:
        from mlx_lm.sample_utils import make_logits_processors

        s = request.sampling
        vocab = len(self._tokens.pieces)
        for token in request.logit_bias:
            if token >= vocab:
                raise EngineError(
                    f"logit_bias token id {token} is outside the vocabulary (0..{vocab - 1})",
                    param="logit_bias",
                )
        return list(
            make_logits_processors(
                logit_bias=request.logit_bias or None,
                repetition_penalty=s.repetition_penalty,
                presence_penalty=s.presence_penalty,
                frequency_penalty=s.frequency_penalty,
            )
        )

    # --- scheduler thread: the only one that touches MLX ------------------

    def _run(self, spec: LoadOptions, loaded: queue.SimpleQueue[BaseException | None]) -> None:
        try:
            self._load(spec)
        except BaseException as exc:
            loaded.put(exc)
            return
        loaded.put(None)
        if self._draft is not None or self.parallel == 1:
            self._serve_sequential()
        else:
            self._serve_batched()

    def _serve_batched(self) -> None:
        from mlx_lm.generate import BatchGenerator

        def new_batch() -> Any:
            return BatchGenerator(
                self._model,
                completion_batch_size=self.parallel,
                prefill_batch_size=self.parallel,
            )

        batch = new_batch()
        running: dict[int, tuple[_Job, Any]] = {}
        while not self._closed:
            job = self._next_job(block=not running)
            if job is not None:
                self._admit(batch, running, job)
                continue  # admit everything waiting before the next step
            gone = [uid for uid, (j, _) in running.items() if j.cancelled.is_set()]
            if gone:
                batch.remove(gone)
                for uid in gone:
                    running.pop(uid)[0].events.put(("cancelled", None))
            if not running:
                continue
            try:
                _, responses = batch.next()
            except Exception as exc:
                for job, _ in running.values():
                    job.events.put(("error", repr(exc)))
                running.clear()
                batch = new_batch()
                continue
            for r in responses:
                entry = running.get(r.uid)
                if entry is None:
                    continue
                job, decoder = entry
                text = _piece(decoder, r.token, r.finish_reason)
                job.events.put(("token", (text, r.finish_reason, self._logprob(job, r))))
                if r.finish_reason is not None:
                    del running[r.uid]
                    if self._prompt_cache is not None and r.prompt_cache is not None:
                        self._prompt_cache.insert_cache(
                            self._model_key, list(r.all_tokens), r.prompt_cache
                        )

    def _next_job(self, *, block: bool) -> _Job | None:
        try:
            if block:
                return self._inbox.get(timeout=IDLE_WAIT_SECONDS)
            return self._inbox.get_nowait()
        except queue.Empty:
            return None

    def _admit(self, batch: Any, running: dict[int, tuple[_Job, Any]], job: _Job) -> None:
        if job.cancelled.is_set():
            job.events.put(("cancelled", None))
            return
        cache, rest = self._cached_prefix(job)
        from mlx_lm.generate import StopSequences

        (uid,) = batch.insert(
            [rest],
            max_tokens=[job.max_tokens],
            caches=[cache] if cache is not None else None,
            all_tokens=[job.tokens[: job.cached_tokens]],
            samplers=[job.sampler],
            logits_processors=[job.logits_processors],
            stop_sequences=[StopSequences([(t,) for t in self._tokenizer.eos_token_ids])],
        )
        running[uid] = (job, self._decoder())

    def _serve_sequential(self) -> None:
        """One request at a time: a single slot, or speculative decoding.

        mlx-lm's ``stream_generate`` is faster than a batch of one; with a
        draft model it is the only way to decode.
        """
        from mlx_lm.generate import stream_generate
        from mlx_lm.models.cache import make_prompt_cache

        while not self._closed:
            job = self._next_job(block=True)
            if job is None:
                continue
            if job.cancelled.is_set():
                job.events.put(("cancelled", None))
                continue
            cache, rest = self._cached_prefix(job)
            if cache is None:
                cache = make_prompt_cache(self._model)
                if self._draft is not None:
                    cache += make_prompt_cache(self._draft)
            decoder, seen = self._decoder(), list(job.tokens)
            try:
                for response in stream_generate(
                    self._model,
                    self._tokenizer,
                    rest,
                    max_tokens=job.max_tokens,
                    draft_model=self._draft,
                    num_draft_tokens=self._num_draft_tokens,
                    sampler=job.sampler,
                    logits_processors=job.logits_processors,
                    prompt_cache=cache,
                ):
                    if job.cancelled.is_set():
                        job.events.put(("cancelled", None))
                        break
                    seen.append(response.token)
                    text = _piece(decoder, response.token, response.finish_reason)
                    logprob = self._logprob(job, response)
                    job.events.put(("token", (text, response.finish_reason, logprob)))
                    if response.finish_reason is not None:
                        break
            except Exception as exc:
                job.events.put(("error", repr(exc)))
                continue
            if self._prompt_cache is not None and self._draft is None:
                self._prompt_cache.insert_cache(self._model_key, seen, cache)

    def _guided(self, prepared: PreparedChat) -> GuidedLogits:
        """The constraint of ``prepared`` as a logits processor."""
        table = self._tokens
        if prepared.answer is None or prepared.reasoning_end is None:
            assert prepared.constraint is not None
            return GuidedLogits(table.index(to_regex(prepared.constraint)))
        return GuidedLogits(
            table.index(to_regex(prepared.answer)),
            table=table,
            free_until=prepared.reasoning_end,
            budget=prepared.reasoning_budget,
            forced=table.index(to_regex(seq(Lit(prepared.reasoning_end), prepared.answer))),
        )

    def _logprob(self, job: _Job, response: Any) -> TokenLogprob | None:
        if job.top_logprobs < 0:
            return None
        return token_logprob(self._tokens, response.token, response.logprobs, job.top_logprobs)

    def _cached_prefix(self, job: _Job) -> tuple[Any, list[int]]:
        """The KV cache of the longest cached prefix of the job, and the rest."""
        cache, rest = None, job.tokens
        if self._prompt_cache is not None and self._draft is None:
            cache, rest = self._prompt_cache.fetch_nearest_cache(self._model_key, job.tokens)
        if not rest:  # an exact hit still needs one token to start decoding
            cache, rest = None, job.tokens
        job.cached_tokens = len(job.tokens) - len(rest)
        return cache, rest

    def _decoder(self) -> IncrementalDecoder:
        hf_tokenizer = self._tokenizer._tokenizer
        return IncrementalDecoder(lambda ids: hf_tokenizer.decode(ids, skip_special_tokens=True))

    # --- the rest of the Engine protocol ---------------------------------

    def memory(self) -> EngineMemory:
        """MLX's active, cache and peak memory."""
        return mlx_memory()

    def close(self) -> None:
        """Stop the scheduler thread."""
        self._closed = True
        self._inbox.put(None)


def _piece(decoder: IncrementalDecoder, token: int, finish_reason: str | None) -> str:
    """The text a new token adds; the end-of-sequence token itself adds none."""
    if finish_reason == "stop":
        return decoder.flush()
    text = decoder.add(token)
    return text + decoder.flush() if finish_reason is not None else text


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
