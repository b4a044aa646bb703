"""What the cross-cutting features cost: single-stream decode tokens/s of two
servers on the embedded GGUF, one with a feature and one without, requests
alternating between them (paired, order flipping). Telemetry: metrics and
access logs on vs ``--metrics off --access-log off``. Access: an API key and
CORS checked on every request vs neither (the client sends the same headers)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from bodega.settings import embedded_lm_path

from .client import HttpChat
from .registry import Options, register
from .report import Table, fmt, median, spread, verdict
from .server import BodegaServer

TARGET = 0.99  # decode tokens/s with the feature / without
MAX_TOKENS = 128
KEY = "sk-bench-overhead"
HEADERS = {"Authorization": f"Bearer {KEY}", "Origin": "https://app.example"}


def _config(log_dir: Path, name: str, server: str = "") -> Path:
    path = log_dir / f"overhead-{name}.yaml"
    path.write_text(
        (f"server:\n{server}" if server else "")
        + f"models:\n  - model_path: {embedded_lm_path()}\n    model_id: lm\n    n_threads: 1\n"
    )
    return path


def _decode_tps(chat: HttpChat, i: int) -> float:
    stream = chat.stream(f"Write a long story about a fox, number {i}.", MAX_TOKENS)
    problem = stream.check(MAX_TOKENS)
    if problem:
        raise RuntimeError(f"unusable sample: {problem}")
    return stream.decode_tps


def _paired(
    options: Options, log_dir: Path, name: str, on_args: list[str], off_args: list[str]
) -> list[tuple[float, float]]:
    """(with, without) tokens/s pairs."""
    with (
        BodegaServer(log_dir / f"overhead-{name}-on.log", on_args) as on,
        BodegaServer(log_dir / f"overhead-{name}-off.log", off_args) as off,
    ):
        chats = (
            HttpChat(on.base_url, "lm", headers=HEADERS),
            HttpChat(off.base_url, "lm", headers=HEADERS),
        )
        for chat in chats:
            chat.warm()
            _decode_tps(chat, 0)
        pairs = []
        for i in range(options.reps(12, 4)):
            if i % 2 == 0:
                pairs.append((_decode_tps(chats[0], i), _decode_tps(chats[1], i)))
            else:
                without = _decode_tps(chats[1], i)
                pairs.append((_decode_tps(chats[0], i), without))
        for chat in chats:
            chat.close()
    return pairs


def _row(table: Table, label: str, pairs: list[tuple[float, float]]) -> None:
    ratios = [with_ / without for with_, without in pairs]
    ratio = median(ratios)
    table.add(
        label,
        fmt(median([p[0] for p in pairs]), ".1f"),
        fmt(median([p[1] for p in pairs]), ".1f"),
        fmt(ratio, ".3f"),
        f">= {TARGET:g}",
        verdict(ratio >= TARGET, ratio),
        spread(ratios, "{:.3f}"),
    )


def _request_ms(client: httpx.Client) -> float:
    start = time.perf_counter()
    client.get("/v1/queue/stats").raise_for_status()
    return (time.perf_counter() - start) * 1e3


def _check_cost_ms(options: Options, log_dir: Path, guarded: str, plain: str) -> list[float]:
    """Per-request milliseconds the key check and CORS add, paired: a cheap keyed
    route on both servers, alternating, the difference of each pair."""
    quiet = ["--metrics", "off", "--access-log", "off"]
    with (
        BodegaServer(log_dir / "overhead-cost-on.log", ["--config", guarded, *quiet]) as on,
        BodegaServer(log_dir / "overhead-cost-off.log", ["--config", plain, *quiet]) as off,
        httpx.Client(base_url=on.base_url, headers=HEADERS) as with_,
        httpx.Client(base_url=off.base_url, headers=HEADERS) as without,
    ):
        for client in (with_, without):
            for _ in range(20):
                _request_ms(client)
        diffs = []
        for i in range(options.reps(400, 40)):
            if i % 2:
                b = _request_ms(without)
                diffs.append(_request_ms(with_) - b)
            else:
                a = _request_ms(with_)
                diffs.append(a - _request_ms(without))
    return diffs


@register("overhead", "metrics, access logs, API keys and CORS: decode tokens/s on vs off")
def run(options: Options) -> list[Table]:
    """One table, a row per feature."""
    log_dir = Path(options.log_dir)
    plain = str(_config(log_dir, "plain"))
    guarded = str(
        _config(
            log_dir, "guarded", f"  api_keys: [{KEY}]\n  cors_origins: ['https://app.example']\n"
        )
    )
    quiet = ["--metrics", "off", "--access-log", "off"]
    table = Table(
        title=f"Single-stream decode, {MAX_TOKENS} tokens (embedded GGUF, n_threads 1): "
        f"tokens/s with and without, medians of {options.reps(12, 4)} pairs",
        columns=["feature", "with", "without", "ratio", "target", "", "ratio min-max"],
    )
    _row(table, "metrics + access log", _paired(
        options, log_dir, "telemetry", ["--config", plain], ["--config", plain, *quiet]
    ))  # fmt: skip
    access = _paired(
        options, log_dir, "access", ["--config", guarded, *quiet], ["--config", plain, *quiet]
    )
    _row(table, "API key + CORS", access)
    cost = median(_check_cost_ms(options, log_dir, guarded, plain))
    decode_ms = MAX_TOKENS / median([p[1] for p in access]) * 1e3
    share = cost / decode_ms
    table.add(
        "API key + CORS, per request",
        f"{cost:+.3f} ms",
        f"{decode_ms:.0f} ms decode",
        f"{share:.2%}",
        "<= 1%",
        verdict(share <= 0.01, 1 - share),
        "",
    )
    table.notes.append(
        "Both servers run side by side; each request goes to one then the other, the order "
        "flipping. The client sends the same Authorization and Origin headers to both. "
        "The per-request row times a cheap keyed route (GET /v1/queue/stats) on both "
        f"servers, {options.reps(400, 40)} alternating pairs, and sets the median "
        f"difference against the time of a {MAX_TOKENS}-token decode."
    )
    return [table]
