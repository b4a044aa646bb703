"""llama.cpp's own server as a peer: ``python -m bench.peer_llamacpp --model GGUF --port N``.

``xllamacpp.Server`` runs llama-server's HTTP server in-process; this process
holds one on ``127.0.0.1:PORT`` until SIGTERM. Its parameters are those of
Bodega's llama.cpp handler (``bench.engines.engine_params``: slots, context per
slot, threads for decode and batch), so the two servers differ only in the
server around the engine. ``llama-server`` itself is not on PyPI; this is the
same code it runs.
"""

from __future__ import annotations

import argparse
import signal
import threading

from .engines import engine_params


def main() -> None:
    """Serve until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(prog="python -m bench.peer_llamacpp")
    parser.add_argument("--model", required=True, help="the GGUF file")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--parallel", type=int, default=1, help="slots (n_parallel)")
    parser.add_argument("--context", type=int, default=4096, help="context per slot")
    parser.add_argument("--threads", type=int, default=0, help="0: one per core")
    args = parser.parse_args()

    import xllamacpp

    params = engine_params(args.model, args.context, args.parallel)
    if args.threads:
        params.cpuparams.n_threads = args.threads
        params.cpuparams_batch.n_threads = args.threads
    params.verbosity = 1  # as the handler sets it: no per-request timing lines
    params.hostnames = ["127.0.0.1"]
    params.port = args.port
    server = xllamacpp.Server(params)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"llama.cpp server on {server.listening_address}", flush=True)
    stop.wait()


if __name__ == "__main__":
    main()
