"""The local Hugging Face cache, as the model list and the loader see it.

huggingface_hub's cache API (``scan_cache_dir``) gives the repos, their
snapshots and files. What it cannot tell is whether a snapshot holds every
file a download meant to fetch: an interrupted download leaves the files it
finished linked in the snapshot and the one it was writing as a
``blobs/*.incomplete``. So every download Bodega starts first writes a
manifest beside the cache's own folders (``bodega-manifest.json``: the
commit and each planned file's size); a repo is complete when every planned
file is in its snapshot with its size. A repo some other tool downloaded
(no manifest) is complete when no blob is half-written. huggingface_hub
resumes a cut transfer within one call (HTTP Range, from the last whole
10 MiB); a killed process leaves its ``.incomplete`` behind, which the next
download does not reuse.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import msgspec
from huggingface_hub import constants, scan_cache_dir
from huggingface_hub.utils import CachedRepoInfo, CachedRevisionInfo

MANIFEST = "bodega-manifest.json"


class Manifest(msgspec.Struct):
    """What Bodega's downloads of one repo commit planned to fetch."""

    revision: str
    files: dict[str, int]


class CachedModel(msgspec.Struct, kw_only=True):
    """One model repo in the cache, at the revision that would be loaded."""

    repo_id: str
    repo_path: str
    revision: str | None
    snapshot: str | None
    # Files linked in the snapshot, with their sizes.
    files: dict[str, int]
    size_bytes: int
    created: int
    partial_bytes: int
    planned: dict[str, int] | None

    @property
    def is_complete(self) -> bool:
        """Every planned file is in the snapshot with its size (nothing half-written)."""
        if self.snapshot is None:
            return False
        if self.planned is None:
            return self.partial_bytes == 0 and bool(self.files)
        return all(self.files.get(name) == size for name, size in self.planned.items())

    @property
    def download_percentage(self) -> float:
        """How much of the planned bytes are on disk, 0-100."""
        if self.is_complete:
            return 100.0
        if self.planned is None:
            have = sum(self.files.values())
            total = have + self.partial_bytes
        else:
            total = sum(self.planned.values())
            have = sum(min(self.files.get(n, 0), size) for n, size in self.planned.items())
            have += self.partial_bytes
        return round(min(99.9, 100.0 * have / total), 1) if total else 0.0


def cache_dir() -> Path:
    """The hub cache huggingface_hub uses (``HF_HUB_CACHE``, ``HF_HOME``)."""
    return Path(constants.HF_HUB_CACHE)


def repo_folder(repo_id: str) -> Path:
    """The cache folder of a model repo (whether or not it exists)."""
    return cache_dir() / ("models--" + repo_id.replace("/", "--"))


def list_cached() -> list[CachedModel]:
    """Every model repo in the cache, by repo id."""
    folder = cache_dir()
    if not folder.is_dir():
        return []
    info = scan_cache_dir(folder)
    repos = [_describe(r) for r in info.repos if r.repo_type == "model"]
    listed = {Path(r.repo_path) for r in repos}
    # A download that has not finished its first file has no snapshot yet, so
    # the cache scan skips it; its manifest says it is there, half-written.
    for repo_path in folder.glob("models--*"):
        if repo_path not in listed and (repo_path / MANIFEST).is_file():
            repos.append(_describe_unfinished(repo_path))
    return sorted(repos, key=lambda r: r.repo_id)


def _describe_unfinished(repo_path: Path) -> CachedModel:
    manifest = read_manifest(repo_path)
    partial = sum(size for _, size in partial_blobs(repo_path))
    return CachedModel(
        repo_id=repo_path.name.removeprefix("models--").replace("--", "/", 1),
        repo_path=str(repo_path),
        revision=manifest.revision if manifest else None,
        snapshot=None,
        files={},
        size_bytes=partial,
        created=int(repo_path.stat().st_mtime),
        partial_bytes=partial,
        planned=manifest.files if manifest else None,
    )


def find_cached(repo_id: str, revision: str | None = None) -> CachedModel | None:
    """The cached repo at ``revision`` (a branch, tag or commit; default: main),
    or None when the repo (or that revision) is not in the cache."""
    folder = repo_folder(repo_id)
    if not (folder / "snapshots").is_dir():
        unfinished = (folder / MANIFEST).is_file() and revision is None
        return _describe_unfinished(folder) if unfinished else None
    for repo in scan_cache_dir(cache_dir()).repos:
        if repo.repo_type == "model" and repo.repo_id == repo_id:
            cached = _describe(repo, revision)
            return cached if revision is None or cached.revision is not None else None
    return None


def read_manifest(repo_path: Path) -> Manifest | None:
    """The download manifest of a cached repo, if Bodega downloaded it."""
    try:
        return msgspec.json.decode((repo_path / MANIFEST).read_bytes(), type=Manifest)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None


def plan_download(repo_id: str, revision: str, files: dict[str, int]) -> None:
    """Record ``files`` as planned for ``revision`` before any byte is fetched
    (added to what earlier downloads of the same commit planned)."""
    folder = repo_folder(repo_id)
    folder.mkdir(parents=True, exist_ok=True)
    old = read_manifest(folder)
    planned = dict(old.files) if old is not None and old.revision == revision else {}
    planned.update(files)
    tmp = folder / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps({"revision": revision, "files": planned}))
    os.replace(tmp, folder / MANIFEST)


def delete_cached(repo_id: str) -> bool:
    """Remove every revision of a cached repo (and its manifest); False when absent."""
    for repo in scan_cache_dir(cache_dir()).repos if cache_dir().is_dir() else []:
        if repo.repo_type == "model" and repo.repo_id == repo_id:
            hashes = [rev.commit_hash for rev in repo.revisions]
            scan_cache_dir(cache_dir()).delete_revisions(*hashes).execute()
            (repo.repo_path / MANIFEST).unlink(missing_ok=True)
            _remove_leftovers(repo.repo_path)
            return True
    unfinished = repo_folder(repo_id)
    if (unfinished / MANIFEST).is_file() and not (unfinished / "snapshots").is_dir():
        shutil.rmtree(unfinished)  # a download that never finished a file
        return True
    return False


def _remove_leftovers(repo_path: Path) -> None:
    """Half-written blobs and empty folders the cache API leaves behind."""
    for partial in (repo_path / "blobs").glob("*.incomplete"):
        partial.unlink(missing_ok=True)
    for path in sorted(repo_path.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    if repo_path.is_dir() and not any(repo_path.iterdir()):
        repo_path.rmdir()


def partial_blobs(repo_path: Path) -> list[tuple[str, int]]:
    """(etag, bytes) of the blobs being written: ``blobs/<etag>.<random>.incomplete``.
    One whose finished blob exists is a leftover of a killed download, not counted."""
    blobs = repo_path / "blobs"
    found = []
    for path in blobs.glob("*.incomplete"):
        etag = path.name.split(".")[0]
        if (blobs / etag).exists():
            continue
        try:
            found.append((etag, path.stat().st_size))
        except OSError:
            continue  # finished (renamed) meanwhile
    return found


def _describe(repo: CachedRepoInfo, revision: str | None = None) -> CachedModel:
    chosen = _pick_revision(repo, revision)
    manifest = read_manifest(repo.repo_path)
    partial = sum(size for _, size in partial_blobs(repo.repo_path))
    files: dict[str, int] = {}
    if chosen is not None:
        for f in chosen.files:
            name = f.file_path.relative_to(chosen.snapshot_path).as_posix()
            files[name] = f.size_on_disk
    planned = (
        manifest.files if manifest and chosen and manifest.revision == chosen.commit_hash else None
    )
    first_seen = min((r.last_modified for r in repo.revisions), default=repo.last_modified)
    return CachedModel(
        repo_id=repo.repo_id,
        repo_path=str(repo.repo_path),
        revision=chosen.commit_hash if chosen else None,
        snapshot=str(chosen.snapshot_path) if chosen else None,
        files=files,
        size_bytes=repo.size_on_disk + partial,
        created=int(first_seen),
        partial_bytes=partial,
        planned=planned,
    )


def _pick_revision(repo: CachedRepoInfo, revision: str | None) -> CachedRevisionInfo | None:
    """The snapshot ``revision`` names (a ref or a commit); by default the one
    ``main`` points to, else the most recent."""
    wanted = revision or "main"
    for rev in repo.revisions:
        if wanted in rev.refs or rev.commit_hash == wanted:
            return rev
    if revision is not None:
        return None
    return max(repo.revisions, key=lambda r: r.last_modified, default=None)
