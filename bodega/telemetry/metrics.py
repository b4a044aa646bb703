"""The Prometheus metrics of the HTTP process, per model, with prometheus-client.

Latencies and token counts are measured where every request passes: the
model's ``stream`` (``Observation``), so one scrape covers every handler
without a port per handler. Gauges that belong to the handlers (memory,
caches) are read from their ``Stats`` at scrape time (``collector.py``).
Names follow vLLM's where one exists (README: "Metrics").
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics

from bodega.errors import BodegaError, QueueFull, QueueTimeout
from ipc.audio_messages import Transcript
from ipc.image_messages import ImageProgress
from ipc.messages import Delta, Embeddings, Finished

from .context import CURRENT, RequestInfo

# No ``*_created`` series: they double the exposition and no dashboard reads them.
disable_created_metrics()
MODEL_LABELS = ("model", "engine", "model_type")
# Seconds: from a millisecond (an embedding, a token) to minutes (an image, a long answer).
LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75,
    1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0,
)  # fmt: skip
TOKEN_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.5)


class Metrics:
    """Every metric family the HTTP process owns, in one registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r, labels = self.registry, MODEL_LABELS
        self.ttft = Histogram(
            "bodega_time_to_first_token_seconds",
            "Time from the request reaching the model to its first token.",
            labels, registry=r, buckets=LATENCY_BUCKETS,
        )  # fmt: skip
        self.itl = Histogram(
            "bodega_inter_token_latency_seconds",
            "Time between two generated tokens of one request.",
            labels, registry=r, buckets=TOKEN_BUCKETS,
        )  # fmt: skip
        self.e2e = Histogram(
            "bodega_e2e_request_latency_seconds",
            "Time from the request reaching the model to its last frame.",
            labels, registry=r, buckets=LATENCY_BUCKETS,
        )  # fmt: skip
        self.queue = Histogram(
            "bodega_request_queue_time_seconds",
            "Time a request waited for a slot of its model.",
            labels, registry=r, buckets=LATENCY_BUCKETS,
        )  # fmt: skip
        self.prefill = Histogram(
            "bodega_request_prefill_time_seconds",
            "Time from a slot to the first token (prompt processing).",
            labels, registry=r, buckets=LATENCY_BUCKETS,
        )  # fmt: skip
        self.decode = Histogram(
            "bodega_request_decode_time_seconds",
            "Time from the first token to the last.",
            labels, registry=r, buckets=LATENCY_BUCKETS,
        )  # fmt: skip
        self.prompt_tokens = Counter(
            "bodega_prompt_tokens", "Prompt tokens processed.", labels, registry=r
        )
        self.generation_tokens = Counter(
            "bodega_generation_tokens", "Tokens generated.", labels, registry=r
        )
        self.cached_tokens = Counter(
            "bodega_prompt_tokens_cached", "Prompt tokens served from the prompt cache.",
            labels, registry=r,
        )  # fmt: skip
        self.outcomes = Counter(
            "bodega_model_requests",
            "Requests that reached a model, by outcome: ok, cancelled (the client left), "
            "rejected (429, queue full), timed_out (504, waited too long), error.",
            (*labels, "outcome"), registry=r,
        )  # fmt: skip
        self.http = Counter(
            "bodega_http_requests", "HTTP requests by route and status code.",
            ("method", "endpoint", "status", "model"), registry=r,
        )  # fmt: skip
        self.http_latency = Histogram(
            "bodega_http_request_duration_seconds",
            "Time from the request's start to the end of its response body.",
            ("method", "endpoint"), registry=r, buckets=LATENCY_BUCKETS,
        )  # fmt: skip
        self.image_steps = Counter("bodega_image_steps", "Denoising steps run.", labels, registry=r)
        self.image_step_seconds = Counter(
            "bodega_image_step_seconds", "Seconds spent in denoising steps.", labels, registry=r
        )
        self.audio_seconds = Counter(
            "bodega_audio_seconds", "Seconds of audio transcribed.", labels, registry=r
        )
        self.audio_processing_seconds = Counter(
            "bodega_audio_processing_seconds",
            "Seconds spent transcribing (audio_seconds / this is the real-time factor's inverse).",
            labels, registry=r,
        )  # fmt: skip


class Totals:
    """Per-model running sums behind the ratio gauges (``collector.py``)."""

    __slots__ = ("audio", "audio_work", "cached", "image_seconds", "image_steps", "prompt")

    def __init__(self) -> None:
        self.prompt = self.cached = self.image_steps = 0
        self.image_seconds = self.audio = self.audio_work = 0.0


def outcome_of(error: BodegaError) -> str:
    """The outcome label of a request that ended with ``error``."""
    if isinstance(error, QueueFull):
        return "rejected"
    if isinstance(error, QueueTimeout):
        return "timed_out"
    return "error"


def observe(metrics: Metrics | None, totals: Totals, *labels: str) -> Observation | None:
    """An observation of one request to the model ``labels`` name, tied to
    the HTTP request being served (its access-log line gets the model and
    tokens); None when metrics are off and no request is tracked."""
    info = CURRENT.get()
    if info is not None:
        info.model = labels[0]
    if metrics is None and info is None:
        return None
    return Observation(metrics, labels, info, totals)


class Observation:
    """The timings of one request to one model; ``frame`` for each frame."""

    __slots__ = (
        "_info", "_labels", "_metrics", "_totals", "admitted_at", "first_at", "last_at",
        "started_at",
    )  # fmt: skip

    def __init__(
        self,
        metrics: Metrics | None,
        labels: tuple[str, ...],
        info: RequestInfo | None,
        totals: Totals,
    ) -> None:
        self._metrics = metrics
        self._labels = labels
        self._info = info
        self._totals = totals
        self.started_at = time.perf_counter()
        self.admitted_at: float | None = None
        self.first_at: float | None = None
        self.last_at: float | None = None

    def admitted(self) -> None:
        """The request got a slot."""
        self.admitted_at = time.perf_counter()
        if self._metrics is not None:
            self._metrics.queue.labels(*self._labels).observe(self.admitted_at - self.started_at)

    def frame(self, frame: object) -> None:
        """Account one frame from the handler."""
        kind = type(frame)
        info = self._info
        if info is not None:
            if kind is Finished:
                usage = frame.usage  # type: ignore[attr-defined]
                info.prompt_tokens += usage.prompt_tokens
                info.completion_tokens += usage.completion_tokens
                info.cached_tokens += usage.cached_tokens
            elif kind is Embeddings:
                info.prompt_tokens += frame.prompt_tokens  # type: ignore[attr-defined]
        if self._metrics is not None:
            self._measure(kind, frame, time.perf_counter())

    def _measure(self, kind: type, frame: object, now: float) -> None:
        m, labels = self._metrics, self._labels
        assert m is not None
        if kind is Delta:
            if self.first_at is None:
                self.first_at = now
                m.ttft.labels(*labels).observe(now - self.started_at)
                m.prefill.labels(*labels).observe(now - (self.admitted_at or self.started_at))
            elif self.last_at is not None:
                tokens = max(1, frame.n_tokens)  # type: ignore[attr-defined]
                m.itl.labels(*labels).observe((now - self.last_at) / tokens)
            self.last_at = now
        elif kind is Finished:
            usage = frame.usage  # type: ignore[attr-defined]
            self._totals.prompt += usage.prompt_tokens
            self._totals.cached += usage.cached_tokens
            m.prompt_tokens.labels(*labels).inc(usage.prompt_tokens)
            m.generation_tokens.labels(*labels).inc(usage.completion_tokens)
            m.cached_tokens.labels(*labels).inc(usage.cached_tokens)
            if self.first_at is not None:
                m.decode.labels(*labels).observe(now - self.first_at)
        elif kind is Embeddings:
            m.prompt_tokens.labels(*labels).inc(frame.prompt_tokens)  # type: ignore[attr-defined]
        elif kind is ImageProgress:
            step = now - (self.last_at or self.admitted_at or now)
            self._totals.image_steps += 1
            self._totals.image_seconds += step
            m.image_steps.labels(*labels).inc()
            m.image_step_seconds.labels(*labels).inc(step)
            self.last_at = now
        elif kind is Transcript:
            work = now - (self.admitted_at or now)
            duration = frame.duration  # type: ignore[attr-defined]
            self._totals.audio += duration
            self._totals.audio_work += work
            m.audio_seconds.labels(*labels).inc(duration)
            m.audio_processing_seconds.labels(*labels).inc(work)

    def finished(self, outcome: str) -> None:
        """The request ended: ``ok``, ``cancelled``, ``rejected``, ``timed_out`` or ``error``."""
        m, labels = self._metrics, self._labels
        if m is None:
            return
        m.outcomes.labels(*labels, outcome).inc()
        if outcome == "ok":
            m.e2e.labels(*labels).observe(time.perf_counter() - self.started_at)
