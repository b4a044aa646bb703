"""Log lines as text or one JSON object a line, each with its request id."""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

from .requests import RequestIdFilter

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "request_id", "message", ...}``; an access
    line adds its fields (method, path, status, duration_ms, tokens ...)."""

    def format(self, record: logging.LogRecord) -> str:
        """One JSON object, no newlines inside."""
        line: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "message": record.getMessage(),
        }
        line.update(getattr(record, "access", {}))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


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
