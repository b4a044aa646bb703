"""Downloads from the hub into the cache, with progress, one per repo selection.

A download runs in the server's nursery, not the request's: a client that
disconnects from the progress stream leaves it to finish in the background
(the next request for the same repo joins it), so the cache never holds a
half-written file that looks complete. huggingface_hub's
``snapshot_download`` does the fetching (parallel files, resume of
``.incomplete`` blobs with HTTP Range, ``HF_ENDPOINT``/``HF_TOKEN``);
progress is read from the cache folder as it grows.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Literal

import msgspec
import trio
from huggingface_hub import snapshot_download
from huggingface_hub.utils import disable_progress_bars

from bodega.errors import BodegaError

from .cache import find_cached, partial_blobs, plan_download, repo_folder
from .errors import hub_error
from .plan import Plan, Selection, check_disk, local_path, make_plan

log = logging.getLogger(__name__)

DownloadStatus = Literal["starting", "downloading", "completed", "error"]
POLL_INTERVAL = 0.25
# Progress goes to clients as events, not to the server's stderr as tqdm bars.
disable_progress_bars()


class Progress(msgspec.Struct, omit_defaults=True, kw_only=True):
    """One progress event, in the Bodega docs' "Progress Event Format"."""

    # The docs' fields are always sent; the rest when they apply.
    status: DownloadStatus
    progress: float
    file_progress: float
    downloaded_files: int
    total_files: int
    message: str
    model_path: str
    current_file: str | None = None
    downloaded_bytes: int = 0
    total_bytes: int = 0
    local_path: str | None = None
    error: dict[str, str | None] | None = None


class DownloadJob:
    """One download of one repo selection; any number of requests watch it."""

    def __init__(self, repo_id: str, selection: Selection) -> None:
        self.repo_id = repo_id
        self.selection = selection
        self.plan: Plan | None = None
        self.progress = Progress(
            status="starting",
            progress=0.0,
            file_progress=0.0,
            downloaded_files=0,
            total_files=0,
            message="Asking the hub for the file list",
            model_path=repo_id,
        )
        self.failure: BodegaError | None = None
        self.done = trio.Event()
        self.started_at = time.monotonic()
        self._changed = trio.Event()

    @property
    def elapsed(self) -> float:
        """Seconds since the download started."""
        return time.monotonic() - self.started_at

    async def changed(self) -> None:
        """Wait for the next progress update."""
        await self._changed.wait()

    def _update(self, **fields: object) -> None:
        self.progress = msgspec.structs.replace(self.progress, **fields)
        self._changed.set()
        self._changed = trio.Event()

    async def wait(self) -> Path:
        """The local path once complete; the download's error otherwise."""
        await self.done.wait()
        if self.failure is not None:
            raise self.failure
        assert self.progress.local_path is not None
        return Path(self.progress.local_path)

    async def run(self) -> None:
        """Plan, check the disk, fetch; every failure ends as an ``error`` event."""
        try:
            await self._run()
        except BodegaError as exc:
            self._fail(exc)
        except Exception as exc:
            self._fail(hub_error(exc, self.repo_id))
        finally:
            self.done.set()

    def _fail(self, exc: BodegaError) -> None:
        self.failure = exc
        log.warning("download of %s failed: %s", self.repo_id, exc.message)
        self._update(
            status="error",
            message=exc.message,
            error={"message": exc.message, "type": exc.type, "code": exc.code},
        )

    async def _run(self) -> None:
        plan = await trio.to_thread.run_sync(make_plan, self.repo_id, self.selection)
        self.plan = plan
        await trio.to_thread.run_sync(check_disk, plan)
        plan_download(plan.repo_id, plan.commit, plan.files)
        self._update(
            status="downloading",
            total_files=len(plan.files),
            total_bytes=plan.total_bytes,
            message="Downloading model files...",
        )
        failure: Exception | None = None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watch, plan)
            try:
                snapshot = await trio.to_thread.run_sync(_fetch, plan, abandon_on_cancel=True)
            except Exception as exc:
                failure = exc  # raised as itself, not wrapped in the nursery's group
            nursery.cancel_scope.cancel()
        if failure is not None:
            raise failure
        cached = await trio.to_thread.run_sync(find_cached, plan.repo_id, plan.commit)
        if cached is None or any(cached.files.get(n) != s for n, s in plan.files.items()):
            raise BodegaError(f"The download of {plan.repo_id!r} ended with files missing")
        self._update(
            status="completed",
            progress=100.0,
            current_file=None,
            file_progress=100.0,
            downloaded_files=len(plan.files),
            downloaded_bytes=plan.total_bytes,
            local_path=str(local_path(snapshot, plan.gguf)),
            message=f"Downloaded {len(plan.files)} files in {self.elapsed:.1f} s",
        )

    async def _watch(self, plan: Plan) -> None:
        """Read progress off the cache folder: finished files are in the
        snapshot, the ones in flight are ``blobs/<etag>.<random>.incomplete``."""
        snapshot = repo_folder(plan.repo_id) / "snapshots" / plan.commit
        names = {etag: name for name, etag in plan.blobs.items()}
        total = plan.total_bytes or 1
        while True:
            done = {n for n in plan.files if (snapshot / n).is_file()}
            have = sum(plan.files[n] for n in done)
            current, current_size, current_bytes = None, 0, 0
            for etag, size in partial_blobs(repo_folder(plan.repo_id)):
                name = names.get(etag)
                if name is None or name in done:
                    continue
                have += size
                if current is None or size > current_bytes:
                    current, current_size, current_bytes = name, plan.files[name], size
            # A file between its finished blob and its snapshot link is briefly
            # in neither place: progress never goes back.
            have = max(have, self.progress.downloaded_bytes)
            self._update(
                progress=round(min(100.0, 100.0 * have / total), 1),
                current_file=current,
                file_progress=round(100.0 * current_bytes / current_size, 1)
                if current_size
                else 0.0,
                downloaded_files=len(done),
                downloaded_bytes=have,
            )
            await trio.sleep(POLL_INTERVAL)


def _fetch(plan: Plan) -> str:
    """huggingface_hub fetches exactly the planned files at the planned commit."""
    return snapshot_download(
        plan.repo_id,
        revision=plan.revision,
        allow_patterns=[_literal(n) for n in plan.files],
    )


def _literal(name: str) -> str:
    """``name`` as an fnmatch pattern that matches only itself."""
    return "".join(f"[{c}]" if c in "*?[]" else c for c in name)


class Downloads:
    """The downloads in flight; a second request for the same selection joins
    the first. Jobs run in ``nursery`` (the server's), outliving requests."""

    def __init__(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        self._jobs: dict[tuple[str, Selection], DownloadJob] = {}

    def start(self, repo_id: str, selection: Selection) -> DownloadJob:
        """The running download of this selection, or a new one."""
        key = (repo_id, selection)
        job = self._jobs.get(key)
        if job is None:
            job = DownloadJob(repo_id, selection)
            self._jobs[key] = job
            self._nursery.start_soon(self._run, key, job)
        return job

    async def _run(self, key: tuple[str, Selection], job: DownloadJob) -> None:
        try:
            await job.run()
        finally:
            self._jobs.pop(key, None)

    def active(self, repo_id: str) -> list[DownloadJob]:
        """Downloads of ``repo_id`` in flight."""
        return [job for (repo, _), job in self._jobs.items() if repo == repo_id]
