"""The MLX engine's scheduler: the one thread that touches the model.

It admits new requests into an mlx-lm ``BatchGenerator`` between decode
steps, removes cancelled ones at the next step, and hands each request's
tokens to the runtime thread that waits for them. Prompt KV caches are kept
in an LRU keyed by token prefix and reused by longest common prefix. With a
draft model (speculative decoding) or a single slot, requests are decoded one
at a time by ``stream_generate``.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from handlers.lm.detokenize import IncrementalDecoder
from handlers.lm.mlx_guided import TokenTable, token_logprob
from ipc.messages import TokenLogprob

IDLE_WAIT_SECONDS = 0.1
ADMIT_WAIT_SECONDS = 0.1


@dataclass
class Job:
    """One request as the scheduler sees it. Its runtime thread reads
    ``events``: ("token", (text, finish reason, logprob)), ("cancelled", None)
    or ("error", message)."""

    tokens: list[int]
    max_tokens: int
    sampler: Any
    logits_processors: list[Any]
    # -1: no log-probabilities; n >= 0: the chosen token's and the top n.
    top_logprobs: int = -1
    events: queue.SimpleQueue[tuple[str, Any]] = field(default_factory=queue.SimpleQueue)
    cancelled: threading.Event = field(default_factory=threading.Event)
    cached_tokens: int = 0
    # Multimodal prompts: the prompt cache's key (image tokens replaced by
    # ids that stand for the image's content) and the prefill that runs the
    # prompt's embeddings through the model, given the cache of its first
    # ``cached_tokens`` tokens (or None), up to its last token.
    key: list[int] | None = None
    prefill: Callable[[Any, int], Any] | None = None


@dataclass
class Loaded:
    """What the scheduler decodes with, loaded on its own thread."""

    model: Any
    tokenizer: Any
    table: TokenTable
    model_key: str
    draft: Any = None
    num_draft_tokens: int = 3
    prompt_cache: Any = None  # mlx-lm's LRUPromptCache, or None
    # Decode one request at a time even with several slots (multimodal
    # models whose caches mlx-lm's batch cannot merge).
    sequential: bool = False


class Scheduler:
    """Runs jobs from ``inbox`` on the model until closed."""

    def __init__(self, loaded: Loaded, parallel: int) -> None:
        self.inbox: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self.closed = False
        self._m = loaded
        self._parallel = parallel
        # Speculative decoding: tokens generated, and those the draft proposed
        # and the model accepted (read by the stats thread; ints are atomic).
        self.spec_tokens = 0
        self.spec_accepted = 0
        self._preparing = 0
        self._lock = threading.Lock()

    @contextmanager
    def preparing(self) -> Iterator[None]:
        """Around a request's preparation (template, tokens) and its ``submit``:
        while any is under way, newly admitted prompts wait for it (at most
        ``ADMIT_WAIT_SECONDS``) so that prompts arriving together are
        prefilled in one batch instead of the later ones waiting a whole
        prefill of the first."""
        with self._lock:
            self._preparing += 1
        try:
            yield
        finally:
            with self._lock:
                self._preparing -= 1

    def submit(self, job: Job) -> None:
        """Queue a job."""
        self.inbox.put(job)

    def close(self) -> None:
        """Stop after the current step."""
        self.closed = True
        self.inbox.put(None)

    def run(self) -> None:
        """Serve until closed (on the thread that loaded the model)."""
        if self._m.draft is not None or self._parallel == 1 or self._m.sequential:
            self._serve_sequential()
        else:
            self._serve_batched()

    def _serve_batched(self) -> None:
        from mlx_lm.generate import BatchGenerator

        def new_batch() -> Any:
            return BatchGenerator(
                self._m.model,
                completion_batch_size=self._parallel,
                prefill_batch_size=self._parallel,
            )

        batch = new_batch()
        running: dict[int, tuple[Job, Any]] = {}
        admitted_at: float | None = None  # the first admission since the last step
        while not self.closed:
            job = self._next_job(block=not running)
            if (
                job is None
                and admitted_at is not None
                and self._preparing > 0
                and time.monotonic() - admitted_at < ADMIT_WAIT_SECONDS
            ):
                job = self._next_job(block=True, timeout=0.002)
                if job is None:
                    continue  # still preparing: look again
            if job is not None:
                self._admit(batch, running, job)
                admitted_at = admitted_at or time.monotonic()
                continue  # admit everything waiting before the next step
            admitted_at = None
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
                    if self._m.prompt_cache is not None and r.prompt_cache is not None:
                        self._m.prompt_cache.insert_cache(
                            self._m.model_key, _cache_key(job, list(r.all_tokens)), r.prompt_cache
                        )

    def _next_job(self, *, block: bool, timeout: float = IDLE_WAIT_SECONDS) -> Job | None:
        try:
            if block:
                return self.inbox.get(timeout=timeout)
            return self.inbox.get_nowait()
        except queue.Empty:
            return None

    def _admit(self, batch: Any, running: dict[int, tuple[Job, Any]], job: Job) -> None:
        if job.cancelled.is_set():
            job.events.put(("cancelled", None))
            return
        cache, rest = self._cached_prefix(job)
        from mlx_lm.generate import StopSequences

        (uid,) = batch.insert(
            [rest],
            max_tokens=[job.max_tokens],
            caches=[cache] if cache is not None else None,
            all_tokens=[job.tokens[: len(job.tokens) - len(rest)]],
            samplers=[job.sampler],
            logits_processors=[job.logits_processors],
            stop_sequences=[StopSequences([(t,) for t in self._m.tokenizer.eos_token_ids])],
        )
        running[uid] = (job, self._decoder())

    def _serve_sequential(self) -> None:
        """One request at a time: a single slot, or speculative decoding.

        mlx-lm's ``stream_generate`` is faster than a batch of one; with a
        draft model it is the only way to decode.
        """
        from mlx_lm.generate import stream_generate
        from mlx_lm.models.cache import make_prompt_cache

        m = self._m
        while not self.closed:
            job = self._next_job(block=True)
            if job is None:
                continue
            if job.cancelled.is_set():
                job.events.put(("cancelled", None))
                continue
            decoder, seen = self._decoder(), list(job.tokens)
            try:
                cache, rest = self._cached_prefix(job)
                if cache is None:
                    cache = make_prompt_cache(m.model)
                    if m.draft is not None:
                        cache += make_prompt_cache(m.draft)
                for response in stream_generate(
                    m.model,
                    m.tokenizer,
                    rest,
                    max_tokens=job.max_tokens,
                    draft_model=m.draft,
                    num_draft_tokens=m.num_draft_tokens,
                    sampler=job.sampler,
                    logits_processors=job.logits_processors,
                    prompt_cache=cache,
                ):
                    if job.cancelled.is_set():
                        job.events.put(("cancelled", None))
                        break
                    seen.append(response.token)
                    if m.draft is not None:
                        self.spec_tokens += 1
                        self.spec_accepted += bool(getattr(response, "from_draft", False))
                    text = _piece(decoder, response.token, response.finish_reason)
                    logprob = self._logprob(job, response)
                    job.events.put(("token", (text, response.finish_reason, logprob)))
                    if response.finish_reason is not None:
                        break
            except Exception as exc:
                job.events.put(("error", repr(exc)))
                continue
            if m.prompt_cache is not None and m.draft is None:
                m.prompt_cache.insert_cache(m.model_key, _cache_key(job, seen), cache)

    def _logprob(self, job: Job, response: Any) -> TokenLogprob | None:
        if job.top_logprobs < 0:
            return None
        return token_logprob(self._m.table, response.token, response.logprobs, job.top_logprobs)

    def _cached_prefix(self, job: Job) -> tuple[Any, list[int]]:
        """The KV cache of the longest cached prefix of the job, and the rest."""
        cache, rest = None, job.tokens
        if self._m.prompt_cache is not None and self._m.draft is None:
            key = job.key or job.tokens
            cache, rest = self._m.prompt_cache.fetch_nearest_cache(self._m.model_key, key)
            rest = job.tokens[len(key) - len(rest) :]
        if not rest:  # an exact hit still needs one token to start decoding
            cache, rest = None, job.tokens
        job.cached_tokens = len(job.tokens) - len(rest)
        if job.prefill is not None:
            cache, rest = job.prefill(cache, job.cached_tokens), job.tokens[-1:]
        return cache, rest

    def _decoder(self) -> IncrementalDecoder:
        hf_tokenizer = self._m.tokenizer._tokenizer
        return IncrementalDecoder(lambda ids: hf_tokenizer.decode(ids, skip_special_tokens=True))


def _cache_key(job: Job, tokens: list[int]) -> list[int]:
    """The prompt cache's key for the job's prompt followed by its answer."""
    if job.key is None:
        return tokens
    return job.key + tokens[len(job.key) :]


def _piece(decoder: IncrementalDecoder, token: int, finish_reason: str | None) -> str:
    """The text a new token adds; the end-of-sequence token itself adds none."""
    if finish_reason == "stop":
        return decoder.flush()
    text = decoder.add(token)
    return text + decoder.flush() if finish_reason is not None else text
