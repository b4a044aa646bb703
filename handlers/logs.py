"""The handler's log lines: the server's level and format, each line with the
id of the request the thread is serving (``X-Request-ID``, from the ipc message)."""

from __future__ import annotations

import logging
import os
import threading

from catalog.log_format import JsonFormatter

LEVEL_ENV = "BODEGA_LOG_LEVEL"
FORMAT_ENV = "BODEGA_LOG_FORMAT"
_serving = threading.local()


def serving(request_id: str) -> None:
    """This thread now serves ``request_id`` ("" when none)."""
    _serving.request_id = request_id


class _RequestId(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = getattr(_serving, "request_id", "") or "-"
        return True


def configure(model_id: str) -> None:
    """stderr (which the server passes through), at the server's level."""
    handler = logging.StreamHandler()
    handler.addFilter(_RequestId())
    if os.environ.get(FORMAT_ENV) == "json":
        handler.setFormatter(JsonFormatter())
    else:
        name = model_id.replace("%", "%%")
        text = f"%(asctime)s %(levelname)s handler[{name}] [%(request_id)s]: %(message)s"
        handler.setFormatter(logging.Formatter(text))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # Engines' own libraries stay at WARNING; our lines at the server's level.
    root.setLevel(logging.WARNING)
    logging.getLogger("handlers").setLevel(os.environ.get(LEVEL_ENV, "WARNING").upper())
