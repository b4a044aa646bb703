"""``bodega service install|uninstall|status``: a systemd unit on Linux, a
launchd agent on macOS, pointing at this Python and a config file."""

from __future__ import annotations

import plistlib
import shutil
import subprocess
import sys
from pathlib import Path

UNIT_NAME = "bodega.service"
LAUNCHD_LABEL = "ai.bodega.server"
# The watchdog: systemd restarts the server when the event loop stops turning
# (the server pings at half this).
WATCHDOG_SECONDS = 30


def launch_command(config: Path | None) -> list[str]:
    """The command the service runs."""
    command = [sys.executable, "-m", "bodega", "launch"]
    return [*command, "--config", str(config.resolve())] if config is not None else command


def systemd_unit(config: Path | None, *, user: bool) -> str:
    """A ``Type=notify`` unit with a watchdog, restarted on failure."""
    exec_start = " ".join(_quote(part) for part in launch_command(config))
    return "\n".join(
        [
            "[Unit]",
            "Description=Bodega local inference server",
            "Documentation=https://github.com/bodega/bodega",
            "After=network-online.target",
            "Wants=network-online.target",
            "",
            "[Service]",
            "Type=notify",
            "NotifyAccess=main",
            f"ExecStart={exec_start}",
            "ExecReload=/bin/kill -HUP $MAINPID",
            "Restart=on-failure",
            "RestartSec=2",
            f"WatchdogSec={WATCHDOG_SECONDS}",
            # Loading big models takes a while; READY=1 comes once they run.
            "TimeoutStartSec=900",
            "TimeoutStopSec=60",
            "KillMode=mixed",
            "",
            "[Install]",
            f"WantedBy={'default.target' if user else 'multi-user.target'}",
            "",
        ]
    )


def launchd_plist(config: Path | None, log_dir: Path) -> bytes:
    """A launchd agent that starts at login and is restarted when it dies."""
    return plistlib.dumps(
        {
            "Label": LAUNCHD_LABEL,
            "ProgramArguments": launch_command(config),
            "RunAtLoad": True,
            "KeepAlive": {"SuccessfulExit": False},
            "StandardOutPath": str(log_dir / "bodega.log"),
            "StandardErrorPath": str(log_dir / "bodega.log"),
            "ProcessType": "Interactive",
        }
    )


def service_path(*, user: bool, root: Path = Path("/"), platform: str = sys.platform) -> Path:
    """Where the unit or plist goes (``root`` lets tests write elsewhere)."""
    if platform == "darwin":
        return (
            root / Path.home().relative_to("/") / "Library/LaunchAgents" / f"{LAUNCHD_LABEL}.plist"
        )
    if user:
        return root / Path.home().relative_to("/") / ".config/systemd/user" / UNIT_NAME
    return root / "etc/systemd/system" / UNIT_NAME


def install(
    config: Path | None, *, user: bool, root: Path = Path("/"), platform: str = sys.platform
) -> Path:
    """Write the service file; returns its path (enabling it is the manager's job)."""
    path = service_path(user=user, root=root, platform=platform)
    path.parent.mkdir(parents=True, exist_ok=True)
    if platform == "darwin":
        path.write_bytes(launchd_plist(config, path.parent))
    else:
        path.write_text(systemd_unit(config, user=user))
    return path


def uninstall(*, user: bool, root: Path = Path("/"), platform: str = sys.platform) -> bool:
    """Remove the service file; False when there was none."""
    path = service_path(user=user, root=root, platform=platform)
    if not path.exists():
        return False
    path.unlink()
    return True


def status(*, user: bool, root: Path = Path("/"), platform: str = sys.platform) -> str:
    """Whether the service file exists, and the manager's word on it when it can say."""
    path = service_path(user=user, root=root, platform=platform)
    if not path.exists():
        return f"not installed ({path} does not exist)"
    manager = ["systemctl", *(["--user"] if user else []), "is-active", UNIT_NAME]
    if platform == "darwin":
        manager = ["launchctl", "list", LAUNCHD_LABEL]
    if shutil.which(manager[0]) is None:
        return f"installed at {path}"
    answer = subprocess.run(manager, capture_output=True, text=True, check=False)
    state = (answer.stdout or answer.stderr).strip().splitlines()
    return f"installed at {path}; {manager[0]}: {state[0] if state else answer.returncode}"


def _quote(part: str) -> str:
    """systemd's quoting for one ExecStart word."""
    if part and not any(c in part for c in " \"\\'"):
        return part
    return '"' + part.replace("\\", "\\\\").replace('"', '\\"') + '"'
