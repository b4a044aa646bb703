"""Running as a service: sd_notify over a real NOTIFY_SOCKET, and the systemd
unit and launchd plist ``bodega service install`` writes."""

from __future__ import annotations

import plistlib
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bodega.daemon import service
from bodega.settings import embedded_lm_path
from tests.helpers import ROOT, start_server, stop_server


def receive(sock: socket.socket, want: str, seconds: float = 30) -> list[str]:
    """Messages until one holds ``want`` (all of them, in order)."""
    seen: list[str] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            message = sock.recv(4096).decode()
        except TimeoutError:
            break
        seen.append(message)
        if want in message:
            return seen
    raise AssertionError(f"no {want!r} among {seen}")


def test_sd_notify_ready_watchdog_and_stopping(tmp_path: Path) -> None:
    address = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(address))
        config = tmp_path / "config.yaml"
        config.write_text(f"models:\n  - model_path: {embedded_lm_path()}\n    model_id: lm\n")
        server = start_server(
            "--config",
            str(config),
            env={"NOTIFY_SOCKET": str(address), "WATCHDOG_USEC": "1000000"},
        )
        try:
            ready = receive(sock, "READY=1")[-1]
            assert "STATUS=1 of 1 models running" in ready
            assert server.model_info("lm")["status"] == "running"  # ready means loaded
            started = time.monotonic()
            assert "WATCHDOG=1" in receive(sock, "WATCHDOG=1", seconds=5)[-1]
            receive(sock, "WATCHDOG=1", seconds=5)
            assert time.monotonic() - started < 3  # every half of WATCHDOG_USEC
            server.process.send_signal(signal.SIGTERM)
            assert "STOPPING=1" in receive(sock, "STOPPING=1", seconds=10)[-1]
        finally:
            stop_server(server)


def test_the_systemd_unit(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("models: []\n")
    result = subprocess.run(
        [sys.executable, "-m", "bodega", "service", "install", "--config", str(config),
         "--root", str(tmp_path / "root")],
        capture_output=True, text=True, cwd=ROOT, check=True,
    )  # fmt: skip
    unit = tmp_path / "root/etc/systemd/system/bodega.service"
    assert str(unit) in result.stdout
    text = unit.read_text()
    assert "Type=notify" in text and "WatchdogSec=30" in text and "Restart=on-failure" in text
    assert f"--config {config.resolve()}" in text and sys.executable in text
    verify = shutil.which("systemd-analyze")
    if verify is None:
        pytest.skip("systemd-analyze is missing: apt-get install systemd")
    checked = subprocess.run(
        [verify, "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    status = subprocess.run(
        [sys.executable, "-m", "bodega", "service", "status", "--root", str(tmp_path / "root")],
        capture_output=True, text=True, cwd=ROOT, check=True,
    )  # fmt: skip
    assert "installed at" in status.stdout
    removed = subprocess.run(
        [sys.executable, "-m", "bodega", "service", "uninstall", "--root", str(tmp_path / "root")],
        capture_output=True, text=True, cwd=ROOT, check=True,
    )  # fmt: skip
    assert removed.stdout.strip() == "removed" and not unit.exists()


def test_the_launchd_plist(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("models: []\n")
    path = service.install(config, user=True, root=tmp_path, platform="darwin")
    assert path.name == "ai.bodega.server.plist"
    plist = plistlib.loads(path.read_bytes())
    assert plist["Label"] == "ai.bodega.server"
    assert plist["ProgramArguments"][-2:] == ["--config", str(config.resolve())]
    assert plist["RunAtLoad"] is True and plist["KeepAlive"] == {"SuccessfulExit": False}
    plutil = shutil.which("plutil")
    if plutil is not None:
        assert subprocess.run([plutil, "-lint", str(path)], check=False).returncode == 0
    assert service.uninstall(user=True, root=tmp_path, platform="darwin")


def test_sighup_reloads_the_config(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    lm = embedded_lm_path()
    config.write_text(f"models:\n  - model_path: {lm}\n    model_id: a\n"
                      f"  - model_path: {lm}\n    model_id: b\n")  # fmt: skip
    log = tmp_path / "server.log"
    server = start_server("--config", str(config), log_path=log)

    def ids() -> list[str]:
        return sorted(m["id"] for m in server.client.get("/v1/admin/loaded-models").json()["data"])

    def hup_until(expected: list[str]) -> None:
        server.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and ids() != expected:
            time.sleep(0.2)
        assert ids() == expected

    try:
        assert server.load("by-api").status_code == 201  # not the file's: left alone
        pid_b = server.model_info("b")["pid"]
        config.write_text(f"models:\n  - model_path: {lm}\n    model_id: b\n"
                          f"  - model_path: {lm}\n    model_id: c\n")  # fmt: skip
        hup_until(["b", "by-api", "c"])
        assert server.model_info("b")["pid"] == pid_b  # unchanged: not reloaded
        config.write_text(f"models:\n  - model_path: {lm}\n    model_id: b\n"
                          "    context_length: 1024\n")  # fmt: skip
        hup_until(["b", "by-api"])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and server.model_info("b")["pid"] == pid_b:
            time.sleep(0.2)
        assert server.model_info("b")["context_length"] == 1024  # changed: reloaded
        config.write_text("models: [oops\n")
        server.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while (
            time.monotonic() < deadline
            and "keeping the running configuration" not in log.read_text()
        ):
            time.sleep(0.1)
        assert "keeping the running configuration" in log.read_text()
        assert ids() == ["b", "by-api"]
    finally:
        stop_server(server)
