"""``make bench``: Bodega's latency and throughput, side by side with the raw engines.

Each benchmark group (see ``bench.registry``) measures one kind of model
through the HTTP server and the same engine driven in-process with no server,
interleaving the two sides so that the noise of a shared machine falls on both
alike, and prints medians with the ratio server / in-process next to a target.

Run ``python -m bench [--quick] [--only GROUP ...]``.
"""

from __future__ import annotations
