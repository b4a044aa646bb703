"""Gauges read at scrape time: per-model queues, memory, restarts and caches.

The registry's models are the source of truth; the handlers' figures come
from the ``Stats`` each answered just before the scrape.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bodega.registry.model import Model

from .metrics import MODEL_LABELS


def model_labels(model: Model) -> tuple[str, str, str]:
    """(model, engine, model_type) of a registered model."""
    return (model.id, model.state().engine, model.spec.model_type)


class ModelCollector(Collector):
    """Yields the per-model gauges for whatever models are registered now."""

    def __init__(self, models: Callable[[], list[Model]]) -> None:
        self._models = models

    def collect(self) -> Iterator[Metric]:
        """One family per figure, one sample per model."""
        labels = list(MODEL_LABELS)

        def gauge(name: str, doc: str, extra: list[str] | None = None) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, labels=labels + (extra or []))

        running = gauge("bodega_num_requests_running", "Requests running on the model.")
        waiting = gauge("bodega_num_requests_waiting", "Requests waiting for a slot.")
        up = gauge("bodega_model_up", "1 when the model is running, else 0.", ["status"])
        rss = gauge("bodega_model_rss_bytes", "Resident memory of the model's handler process.")
        accel = gauge(
            "bodega_model_accelerator_memory_bytes",
            "Accelerator memory the engine holds (0 where it cannot tell).",
            ["kind"],
        )
        restarts = CounterMetricFamily(
            "bodega_handler_restarts", "Times the model's handler was restarted.", labels=labels
        )
        cache_hits = CounterMetricFamily(
            "bodega_embeddings_cache_hits",
            "Embedding inputs answered from the cache.",
            labels=labels,
        )
        cache_entries = gauge("bodega_embeddings_cache_entries", "Inputs held in the cache.")
        cache_ratio = gauge(
            "bodega_prompt_cache_hit_ratio", "Share of prompt tokens served from the prompt cache."
        )
        steps_rate = gauge("bodega_image_steps_per_second", "Denoising steps per second of work.")
        rtf = gauge(
            "bodega_audio_real_time_factor", "Seconds of work per second of audio transcribed."
        )
        accepted = CounterMetricFamily(
            "bodega_spec_decode_num_accepted_tokens",
            "Draft tokens the model accepted (speculative decoding).",
            labels=labels,
        )
        acceptance = gauge(
            "bodega_spec_decode_acceptance_rate",
            "Accepted draft tokens / proposed draft tokens (proposals estimated as "
            "draft length x verification rounds).",
        )
        for model in self._models():
            values = model_labels(model)
            stats = model.admission.stats
            running.add_metric(values, stats.running)
            waiting.add_metric(values, stats.queued)
            status = model.status
            up.add_metric([*values, status], 1.0 if status == "running" else 0.0)
            restarts.add_metric(values, model.restarts)
            totals = model.totals
            if totals.prompt:
                cache_ratio.add_metric(values, totals.cached / totals.prompt)
            if totals.image_seconds:
                steps_rate.add_metric(values, totals.image_steps / totals.image_seconds)
            if totals.audio:
                rtf.add_metric(values, totals.audio_work / totals.audio)
            last = model.handler.last_stats
            if last is None:
                continue
            rss.add_metric(values, last.rss_bytes)
            accel.add_metric([*values, "active"], last.memory.active_bytes)
            accel.add_metric([*values, "cache"], last.memory.cache_bytes)
            accel.add_metric([*values, "peak"], last.memory.peak_bytes)
            counters = last.counters
            if model.spec.model_type in ("embeddings", "rerank"):
                cache_hits.add_metric(values, counters.cache_hits)
                cache_entries.add_metric(values, counters.cache_entries)
            if counters.spec_tokens:
                accepted.add_metric(values, counters.spec_accepted)
                rounds = counters.spec_tokens - counters.spec_accepted
                proposed = rounds * max(1, counters.spec_draft_length)
                rate = counters.spec_accepted / proposed if proposed else 0.0
                acceptance.add_metric(values, min(1.0, rate))  # the last round drafts fewer
        yield from (running, waiting, up, rss, accel, restarts, cache_hits, cache_entries)
        yield from (cache_ratio, steps_rate, rtf, accepted, acceptance)
