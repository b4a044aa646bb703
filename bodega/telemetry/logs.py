"""Log lines as text or one JSON object a line, each with its request id."""

from __future__ import annotations

import logging
import os

from catalog.log_format import JsonFormatter

from .requests import RequestIdFilter

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"


def configure_logging(level: str, log_format: str) -> None:
    """The root handler: stderr, ``text`` or ``json``, request ids on every line."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Handler processes log in the same format (handlers/logs.py reads it).
    os.environ["BODEGA_LOG_FORMAT"] = log_format
    # huggingface_hub's client logs every request to the hub at INFO.
    logging.getLogger("httpx2").setLevel(max(logging.WARNING, root.level))
