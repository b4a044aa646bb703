"""Which files of a hub repo a download fetches, and whether they fit the disk."""

from __future__ import annotations

import re
import shutil
from pathlib import Path, PurePosixPath

import msgspec
from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_url
from huggingface_hub.utils import filter_repo_objects

from bodega.errors import InvalidRequest
from catalog.sniff import gguf_models

from .cache import cache_dir, find_cached
from .errors import InsufficientStorage, hub_error

_SHARD = re.compile(r"-\d{5}-of-\d{5}(?=\.gguf$)")


class Selection(msgspec.Struct, kw_only=True, frozen=True):
    """What to fetch of a repo: a revision, patterns, or one GGUF quantization."""

    revision: str | None = None
    allow_patterns: tuple[str, ...] | None = None
    ignore_patterns: tuple[str, ...] | None = None
    filename: str | None = None
    quant: str | None = None


class Plan(msgspec.Struct, kw_only=True):
    """The files a download fetches, at one commit, with their sizes."""

    repo_id: str
    revision: str
    commit: str
    files: dict[str, int]
    # Blob names in the cache (the hub's ETag): the LFS sha256 or the git blob id.
    blobs: dict[str, str]
    # The model file a GGUF load opens (its first shard); None for folders.
    gguf: str | None = None

    @property
    def total_bytes(self) -> int:
        """Bytes of every planned file."""
        return sum(self.files.values())


def make_plan(repo_id: str, selection: Selection) -> Plan:
    """Ask the hub for the repo's files and pick the ones ``selection`` wants
    (blocking: run it in a thread). Hub failures are raised as HTTP errors."""
    api = HfApi()
    try:
        info = api.model_info(repo_id, revision=selection.revision, files_metadata=True)
    except Exception as exc:
        raise hub_error(exc, repo_id) from exc
    siblings = list(
        filter_repo_objects(
            info.siblings or [],
            allow_patterns=list(selection.allow_patterns or []) or None,
            ignore_patterns=list(selection.ignore_patterns or []) or None,
            key=lambda s: s.rfilename,
        )
    )
    names = [s.rfilename for s in siblings]
    models = gguf_models(names)
    gguf = None
    if models:
        chosen = choose_gguf(repo_id, models, selection)
        gguf = chosen[0]
        others = set(models) - set(chosen)
        siblings = [s for s in siblings if s.rfilename not in others]
    if not siblings:
        raise InvalidRequest(
            f"No file of {repo_id!r} matches allow_patterns/ignore_patterns", param="allow_patterns"
        )
    if info.gated:
        # A gated repo lists its files to anyone: ask for one now, so that a
        # missing token is a 401 before the download starts, not midway.
        try:
            get_hf_file_metadata(hf_hub_url(repo_id, siblings[0].rfilename, revision=info.sha))
        except Exception as exc:
            raise hub_error(exc, repo_id) from exc
    return Plan(
        repo_id=repo_id,
        revision=selection.revision or "main",
        commit=str(info.sha),
        files={s.rfilename: s.lfs.size if s.lfs else (s.size or 0) for s in siblings},
        blobs={s.rfilename: s.lfs.sha256 if s.lfs else (s.blob_id or "") for s in siblings},
        gguf=gguf,
    )


def choose_gguf(repo_id: str, models: list[str], selection: Selection) -> list[str]:
    """The GGUF (all its shards) that ``filename`` or ``quant`` names; the only
    one when the repo has one. A 400 listing the files otherwise."""
    groups: dict[str, list[str]] = {}
    for name in models:
        groups.setdefault(_SHARD.sub("", name), []).append(name)
    if selection.filename is not None:
        picked = [
            g
            for g in groups.values()
            if selection.filename in g or _SHARD.sub("", selection.filename) in g
        ]
        param = "filename"
    elif selection.quant is not None:
        token = re.compile(rf"(^|[-._/]){re.escape(selection.quant)}([-._]|$)", re.IGNORECASE)
        picked = [g for key, g in groups.items() if token.search(PurePosixPath(key).stem)]
        param = "quant"
    else:
        picked = list(groups.values())
        param = "filename"
    if len(picked) == 1:
        return sorted(picked[0])
    available = ", ".join(sorted(groups))
    if not picked:
        asked = selection.filename or selection.quant
        raise InvalidRequest(
            f"{repo_id!r} has no GGUF matching {asked!r}; available: {available}", param=param
        )
    raise InvalidRequest(
        f"{repo_id!r} holds {len(picked)} GGUF files; pick one with filename or quant "
        f'(e.g. quant: "Q4_K_M"): {", ".join(sorted(k for k, g in groups.items() if g in picked))}',
        param=param,
    )


def bytes_to_fetch(plan: Plan) -> int:
    """Planned bytes not already in the cache at the planned commit."""
    cached = find_cached(plan.repo_id, plan.commit)
    have = cached.files if cached is not None else {}
    return sum(size for name, size in plan.files.items() if have.get(name) != size)


def check_disk(plan: Plan) -> None:
    """InsufficientStorage (507) when the planned download cannot fit."""
    needed = bytes_to_fetch(plan)
    folder = cache_dir()
    while not folder.exists():
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise InsufficientStorage(
            f"Downloading {plan.repo_id!r} needs {_gb(needed)} but {folder} has {_gb(free)} free "
            f"(needed {needed} bytes, free {free} bytes)"
        )


def _gb(n: int) -> str:
    return f"{n / 1e9:.2f} GB"


def local_path(snapshot: str | Path, plan_gguf: str | None) -> Path:
    """What a handler loads: the GGUF file in the snapshot, or the snapshot folder."""
    return Path(snapshot) / plan_gguf if plan_gguf else Path(snapshot)
