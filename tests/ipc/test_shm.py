"""Shared-memory payloads: lifecycle, readers in other processes, sweep."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from ipc import shm
from ipc.messages import ShmRef
from ipc.shm import THRESHOLD, ShmError, ShmOwner, pack, read, sweep, unpack

ROOT = Path(__file__).resolve().parents[2]
HAS_DEV_SHM = Path("/dev/shm").is_dir()


@pytest.fixture
def owner() -> Iterator[ShmOwner]:
    owner = ShmOwner()
    yield owner
    owner.release_all()


def _run_python(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter (its own resource tracker)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


def _exists(name: str) -> bool:
    try:
        read(ShmRef(name=name, size=0))
    except ShmError:
        return False
    return True


def _dead_pid() -> int:
    pid = 999_999
    while psutil.pid_exists(pid):
        pid += 1
    return pid


def test_create_read_release(owner: ShmOwner) -> None:
    data = os.urandom(100_000)
    ref = owner.create(data)
    assert ref.size == len(data)
    assert ref.name.startswith(f"bd{os.getpid()}-")
    assert len(owner) == 1
    assert read(ref) == data
    assert read(ref) == data  # reading neither consumes nor unlinks
    owner.release(ref)
    assert len(owner) == 0
    with pytest.raises(ShmError, match="does not exist"):
        read(ref)
    owner.release(ref)  # idempotent


def test_create_from_memoryview_and_empty(owner: ShmOwner) -> None:
    data = bytearray(b"abc" * 1000)
    ref = owner.create(memoryview(data)[3:])
    assert read(ref) == bytes(data[3:])
    empty = owner.create(b"")
    assert empty.size == 0
    assert read(empty) == b""


def test_release_all(owner: ShmOwner) -> None:
    refs = [owner.create(bytes([i]) * 10) for i in range(5)]
    assert len(owner) == 5
    owner.release_all()
    assert len(owner) == 0
    for ref in refs:
        with pytest.raises(ShmError):
            read(ref)


def test_name_fits_macos_limit() -> None:
    owner = ShmOwner(owner_pid=4_194_304)  # Linux's largest pid_max
    ref = owner.create(b"x")
    try:
        assert len("/" + ref.name) < 31
        assert ref.name.startswith("bd4194304-")
    finally:
        owner.release(ref)


def test_size_larger_than_segment(owner: ShmOwner) -> None:
    ref = owner.create(b"x" * 10)
    with pytest.raises(ShmError, match="fewer than"):
        read(ShmRef(name=ref.name, size=1 << 30))


@pytest.mark.parametrize("name", ["", "../etc/passwd", "psm_1234", "bd12-xyz", "bd-00"])
def test_read_rejects_foreign_names(name: str) -> None:
    with pytest.raises(ShmError, match="not a shared-memory payload name"):
        read(ShmRef(name=name, size=1))


def test_child_process_reads_without_unlinking(owner: ShmOwner) -> None:
    data = os.urandom(THRESHOLD + 123)
    ref = owner.create(data)
    result = _run_python(
        "import sys, hashlib\n"
        "from ipc.messages import ShmRef\n"
        "from ipc.shm import read\n"
        f"data = read(ShmRef(name={ref.name!r}, size={ref.size}))\n"
        "sys.stdout.write(hashlib.sha256(data).hexdigest())\n"
    )
    assert result.returncode == 0, result.stderr
    import hashlib

    assert result.stdout == hashlib.sha256(data).hexdigest()
    # The child's resource tracker neither unlinked the segment nor warned.
    assert result.stderr == ""
    assert read(ref) == data
    if HAS_DEV_SHM:
        assert (Path("/dev/shm") / ref.name).exists()


def test_creator_process_is_quiet() -> None:
    """Create, read back in the same process, release and one released behind
    our back: the resource tracker must not warn about leaks or unknown names."""
    result = _run_python(
        "import os\n"
        "from ipc.shm import ShmOwner, read, sweep\n"
        "owner = ShmOwner()\n"
        "ref = owner.create(b'x' * 1000)\n"
        "assert read(ref) == b'x' * 1000\n"
        "owner.release(ref)\n"
        "dead = ShmOwner(owner_pid=999999)\n"
        "gone = dead.create(b'y')\n"
        "if os.path.isdir('/dev/shm'):\n"
        "    os.unlink('/dev/shm/' + gone.name)\n"
        "dead.release_all()\n"
        "kept = ShmOwner().create(b'z')\n"  # never released: the tracker cleans up
        "print(kept.name)\n"
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    # Only the deliberately leaked segment is reported, and the tracker
    # removed it when the creator exited.
    assert "There appear to be 1 leaked shared_memory" in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert all("leaked shared_memory" in line or "warn(" in line for line in lines), lines
    assert not _exists(result.stdout.strip())


def test_pack_threshold(owner: ShmOwner) -> None:
    small = b"s" * (THRESHOLD - 1)
    assert pack(small, owner) is small
    assert len(owner) == 0
    big = b"b" * THRESHOLD
    ref = pack(big, owner)
    assert isinstance(ref, ShmRef)
    assert ref.size == THRESHOLD
    assert len(owner) == 1
    assert unpack(ref) == big
    assert unpack(small) == small
    custom = pack(b"abc", owner, threshold=3)
    assert isinstance(custom, ShmRef)
    assert unpack(custom) == b"abc"
    assert pack(b"abc", owner, threshold=4) == b"abc"


@pytest.mark.skipif(not HAS_DEV_SHM, reason="segments are not listable here")
def test_sweep_removes_dead_owner_segments(owner: ShmOwner) -> None:
    dead_pid = _dead_pid()
    dead = ShmOwner(owner_pid=dead_pid)
    stale = dead.create(b"stale")
    live = owner.create(b"live")
    # Only judge our own fake pid dead, so that a parallel run keeps its own.
    removed = sweep(is_alive=lambda pid: pid != dead_pid)
    assert removed == [stale.name]
    with pytest.raises(ShmError):
        read(stale)
    assert read(live) == b"live"
    dead.release(stale)  # already gone: quiet and idempotent
    assert len(dead) == 0


@pytest.mark.skipif(not HAS_DEV_SHM, reason="segments are not listable here")
def test_sweep_default_uses_pid_exists(owner: ShmOwner) -> None:
    dead = ShmOwner(owner_pid=_dead_pid())
    stale = dead.create(b"stale")
    live = owner.create(b"live")
    removed = sweep()
    assert stale.name in removed
    assert live.name not in removed
    assert read(live) == b"live"
    dead.release_all()


def test_sweep_without_dev_shm(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(shm, "_SHM_DIR", str(tmp_path / "missing"))
    assert sweep(is_alive=lambda pid: False) == []


def test_sweep_ignores_other_names(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ["bd1-abc", "bd1-xyz", "psm_1", "bdx-12", "bd2-ab.tmp", "sem.bd1-ab"]:
        (tmp_path / name).write_bytes(b"")
    monkeypatch.setattr(shm, "_SHM_DIR", str(tmp_path))
    assert sweep(is_alive=lambda pid: pid == 2) == ["bd1-abc"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "bd1-xyz",
        "bd2-ab.tmp",
        "bdx-12",
        "psm_1",
        "sem.bd1-ab",
    ]
