"""Large request bodies (images, audio as base64) read without per-chunk and
per-page costs in the HTTP process.

Measured on an 800 KB chat body (a 600 KB PNG as a data URL) on 2 cores: the
body cost 2.4 ms more than a small one through Hypercorn and Quart alone,
1.0-1.5 ms after both changes below (ARCHITECTURE.md, "Vision"). In-process a
request pays none of it, so it is all server overhead on an image's TTFT.

- Hypercorn reads a connection 64 KiB at a time; each read is one pass of h11,
  the ASGI queue and Quart's body buffer. Reads of up to 1 MiB take a large
  body in one or two passes; a small request still gets what arrived.
- glibc returns large freed blocks to the system (``mmap`` above 128 KiB, and
  the heap's top trimmed past 256 KiB, thresholds that adapt only partly), so
  every copy of a large body (the socket's bytes, Quart's buffer, the decoded
  JSON string, the image bytes) touched fresh pages, one page fault per 4 KiB.
  Keeping up to ``TRIM_BYTES`` of freed heap and serving blocks up to
  ``MMAP_BYTES`` from it reuses warm pages. Only this process: the handlers
  keep the defaults.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

RECV_BYTES = 2**20
MMAP_BYTES = 32 * 2**20  # glibc's own ceiling for its adaptive threshold
TRIM_BYTES = 128 * 2**20
_M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
_M_MMAP_THRESHOLD = -3


def install() -> None:
    """Raise Hypercorn's read size and, on glibc, malloc's thresholds."""
    from hypercorn.trio import tcp_server

    if hasattr(tcp_server, "MAX_RECV"):
        tcp_server.MAX_RECV = max(tcp_server.MAX_RECV, RECV_BYTES)
    else:
        log.warning(
            "hypercorn's tcp_server has no MAX_RECV: large bodies are read 64 KiB at a time"
        )
    tune_malloc()


def tune_malloc() -> bool:
    """Set glibc's mmap and trim thresholds; False where there is no glibc
    (macOS, musl) or it refused them."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    done = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_BYTES)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_BYTES)
    )
    if not done:
        log.info("malloc thresholds not set: large bodies take fresh pages")
    return done
