"""What llama.cpp reports besides its text: its own buffer sizes (weights, KV
cache, compute), from its load log, and its token log-probabilities.

xllamacpp has no call that returns them; llama.cpp logs them while loading,
at verbosity 4: ``load_tensors: CPU_Mapped model buffer size = 92.10 MiB``,
``llama_kv_cache: CPU KV buffer size = 11.25 MiB``, ``sched_reserve: CPU
compute buffer size = 15.14 MiB`` (a line per device). ``load_log`` raises the
verbosity for the load and sends fd 2 through a filter process meanwhile: it
passes on every line but llama.cpp's info and debug ones (all of them with
``BODEGA_ENGINE_LOGS``) and hands back the size lines. A process, not a thread,
so that what a load that aborts writes last still reaches the server. After
the load llama.cpp's threshold (the exported ``common_log_verbosity_thold``)
is set back, so requests log no more than before.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

from ipc.messages import TokenLogprob, TopLogprob

LOAD_VERBOSITY = 4
MIB = 1024 * 1024
_SIZE = re.compile(r"(model|KV|compute|output) buffer size =\s*([\d.]+) MiB")
# Keyed as ``EngineMemory``'s fields; the (small) output buffer counts as compute.
_KINDS = {
    "model": "model_buffer_bytes",
    "KV": "kv_cache_bytes",
    "compute": "compute_buffer_bytes",
    "output": "compute_buffer_bytes",
}
# Each model load (a draft model's too) starts with this line.
_GROUP = "llama_model_loader: loaded meta data"
# The filter: a llama.cpp entry starts with its timestamp and level; lines
# that start with neither that nor a log line of ours continue the entry.
_FILTER = r"""
import os, re, sys
entry = re.compile(rb"^\d+\.\d+\.\d+\.\d+ ([A-Z]) ")
ours = re.compile(rb"^(\d{4}-\d\d-\d\d |\{)")
keep = re.compile(rb"buffer size =|loaded meta data")
show, hiding = sys.argv[1] == "1", False
for line in sys.stdin.buffer:
    if keep.search(line):
        sys.stdout.buffer.write(line)
    match = entry.match(line)
    if match or ours.match(line):
        hiding = bool(match) and match.group(1) in b"ID"
    if show or not hiding:
        os.write(2, line)
"""


def parse_buffer_sizes(text: str) -> dict[str, int]:
    """Bytes of the model, KV cache and compute buffers over all devices and
    the models loaded (a draft model too), keyed as ``EngineMemory``'s fields.
    Groups with no weights are llama.cpp's dry run fitting its parameters."""
    groups: list[dict[str, float]] = []
    for line in text.splitlines():
        if _GROUP in line:
            groups.append({})
        elif (match := _SIZE.search(line)) is not None and groups:
            kind = _KINDS[match.group(1)]
            groups[-1][kind] = groups[-1].get(kind, 0.0) + float(match.group(2))
    totals: dict[str, float] = {}
    for group in groups:
        if group.get("model_buffer_bytes", 0.0) > 0:
            for kind, mib in group.items():
                totals[kind] = totals.get(kind, 0.0) + mib
    return {kind: int(mib * MIB) for kind, mib in totals.items()}


def _drain(library: ctypes.CDLL) -> None:
    """Wait until llama.cpp's log thread has written what it holds: pausing
    the main ``common_log`` joins that thread, resuming starts it again."""
    try:
        main = library._Z15common_log_mainv
        pause, resume = (
            library._Z16common_log_pauseP10common_log,
            library._Z17common_log_resumeP10common_log,
        )
    except AttributeError:
        return
    main.restype = ctypes.c_void_p
    pause.argtypes = resume.argtypes = [ctypes.c_void_p]
    log = main()
    pause(log)
    resume(log)


class LoadLog:
    """What ``load_log`` read: the buffer sizes (empty when unknown)."""

    def __init__(self) -> None:
        self.sizes: dict[str, int] = {}


@contextlib.contextmanager
def load_log(params: Any, show_all: bool) -> Iterator[LoadLog]:
    """Around ``xllamacpp.Server(params)``: its buffer sizes in the result.
    Without the exported threshold nothing is changed and none are read."""
    import xllamacpp

    result = LoadLog()
    try:
        library = ctypes.CDLL(xllamacpp.xllamacpp.__file__)
        threshold = ctypes.c_int.in_dll(library, "common_log_verbosity_thold")
    except (OSError, ValueError, AttributeError):
        yield result
        return
    wanted = params.verbosity
    params.verbosity = max(wanted, LOAD_VERBOSITY)
    command = [sys.executable, "-S", "-c", _FILTER, "1" if show_all else "0"]
    log_filter = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert log_filter.stdin is not None and log_filter.stdout is not None
    sys.stderr.flush()
    saved = os.dup(2)
    os.dup2(log_filter.stdin.fileno(), 2)
    try:
        yield result
    finally:
        threshold.value = wanted
        _drain(library)
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        log_filter.stdin.close()
        lines = log_filter.stdout.read().decode("utf-8", "replace")
        log_filter.wait()
        result.sizes = parse_buffer_sizes(lines)


def logprobs_of(raw: dict[str, Any] | None, top: int) -> list[TokenLogprob] | None:
    """llama.cpp's OpenAI-style ``logprobs.content`` as our typed entries."""
    if not raw:
        return None
    return [
        TokenLogprob(
            token=entry.get("token", ""),
            bytes=list(entry.get("bytes") or []),
            logprob=float(entry.get("logprob", 0.0)),
            top=[
                TopLogprob(
                    token=alt.get("token", ""),
                    bytes=list(alt.get("bytes") or []),
                    logprob=float(alt.get("logprob", 0.0)),
                )
                for alt in (entry.get("top_logprobs") or [])[:top]
            ],
        )
        for entry in raw.get("content") or []
    ]
