"""What metrics and access logs cost: single-stream decode tokens/s of two
servers on the embedded GGUF, one with ``--metrics off --access-log off``,
requests alternating between them (paired, order flipping)."""

from __future__ import annotations

from pathlib import Path

from bodega.settings import embedded_lm_path

from .client import HttpChat
from .registry import Options, register
from .report import Table, fmt, median, spread, verdict
from .server import BodegaServer

TARGET = 0.99  # decode tokens/s with telemetry on / off
MAX_TOKENS = 128


def _config(log_dir: Path) -> Path:
    path = log_dir / "telemetry-config.yaml"
    path.write_text(
        f"models:\n  - model_path: {embedded_lm_path()}\n    model_id: lm\n    n_threads: 1\n"
    )
    return path


def _decode_tps(chat: HttpChat, i: int) -> float:
    stream = chat.stream(f"Write a long story about a fox, number {i}.", MAX_TOKENS)
    problem = stream.check(MAX_TOKENS)
    if problem:
        raise RuntimeError(f"unusable sample: {problem}")
    return stream.decode_tps


@register("telemetry", "metrics and access logs: decode tokens/s on vs off, paired")
def run(options: Options) -> list[Table]:
    """One table: tokens/s with telemetry on and off, and their ratio."""
    log_dir = Path(options.log_dir)
    config = str(_config(log_dir))
    reps = options.reps(12, 4)
    with (
        BodegaServer(log_dir / "telemetry-on.log", ["--config", config]) as on,
        BodegaServer(
            log_dir / "telemetry-off.log",
            ["--config", config, "--metrics", "off", "--access-log", "off"],
        ) as off,
    ):
        chats = HttpChat(on.base_url, "lm"), HttpChat(off.base_url, "lm")
        for chat in chats:
            chat.warm()
            _decode_tps(chat, 0)
        pairs = []
        for i in range(reps):
            first, second = chats if i % 2 == 0 else chats[::-1]
            a, b = _decode_tps(first, i), _decode_tps(second, i)
            pairs.append((a, b) if i % 2 == 0 else (b, a))
        for chat in chats:
            chat.close()
    ratios = [on_tps / off_tps for on_tps, off_tps in pairs]
    ratio = median(ratios)
    table = Table(
        title=f"Single-stream decode, {MAX_TOKENS} tokens (embedded GGUF, n_threads 1): "
        f"tokens/s, medians of {reps} pairs",
        columns=["telemetry on", "off", "ratio", "target", "", "ratio min-max"],
    )
    table.add(
        fmt(median([p[0] for p in pairs]), ".1f"),
        fmt(median([p[1] for p in pairs]), ".1f"),
        fmt(ratio, ".3f"),
        f">= {TARGET:g}",
        verdict(ratio >= TARGET, ratio),
        spread(ratios, "{:.3f}"),
    )
    table.notes.append(
        "on: GET /metrics bookkeeping (histograms per token) and an access-log line per "
        "request; off: --metrics off --access-log off. Same model file, same settings."
    )
    return [table]
