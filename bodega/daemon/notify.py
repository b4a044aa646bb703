"""The sd_notify protocol, spoken directly (one datagram per message to
``$NOTIFY_SOCKET``): ``READY=1`` once every configured model runs,
``WATCHDOG=1`` at half ``$WATCHDOG_USEC`` while the event loop turns,
``STATUS=`` lines, ``STOPPING=1`` on drain. Without ``NOTIFY_SOCKET`` (not
under systemd) every call does nothing."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Mapping

import trio

log = logging.getLogger("bodega")


class Notifier:
    """Sends sd_notify messages to the service manager, if there is one."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        path = env.get("NOTIFY_SOCKET", "")
        # "@name" is an abstract socket: a leading NUL byte on Linux.
        self._address = "\0" + path[1:] if path.startswith("@") else path
        usec = env.get("WATCHDOG_USEC", "")
        self.watchdog_interval = int(usec) / 2e6 if usec.isdigit() and int(usec) > 0 else None

    @property
    def enabled(self) -> bool:
        """Whether a service manager listens."""
        return bool(self._address)

    def send(self, *lines: str) -> None:
        """One message of ``KEY=value`` lines; a failure is logged, never raised."""
        if not self._address:
            return
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            try:
                sock.sendto("\n".join(lines).encode(), self._address)
            except OSError as exc:
                log.warning("sd_notify to %s failed: %s", self._address, exc)

    async def watchdog(self, status: Callable[[], str]) -> None:
        """``WATCHDOG=1`` (and the current ``STATUS=``) at half the watchdog interval."""
        if self.watchdog_interval is None or not self.enabled:
            return
        while True:
            self.send("WATCHDOG=1", f"STATUS={status()}")
            await trio.sleep(self.watchdog_interval)
