"""huggingface_hub, in-process, against the Hub stand-in (tests/hub_standin.py)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from huggingface_hub import (
    HfApi,
    constants,
    get_hf_file_metadata,
    hf_hub_download,
    hf_hub_url,
    snapshot_download,
)
from huggingface_hub.errors import (
    GatedRepoError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from tests.hub_standin import HubStandIn

REPO = "org/tiny"
WEIGHTS = bytes(range(256)) * 64  # 16 KiB, LFS by its suffix
FILES: dict[str, bytes] = {
    "config.json": b'{"model_type": "tiny"}',
    "model.safetensors": WEIGHTS,
    "sub/tokenizer.json": b"{}",
    "README.md": b"# tiny\n",
}


@pytest.fixture
def hub() -> Iterator[HubStandIn]:
    """A stand-in with REPO, huggingface_hub pointed at it."""
    with HubStandIn() as hub, hub.patched():
        hub.add_repo(REPO, FILES)
        yield hub


def test_model_info_sizes_and_tree(hub: HubStandIn) -> None:
    hub.report_size("model.safetensors", 10**12)
    info = HfApi().model_info(REPO, revision="main", files_metadata=True)
    assert info.id == REPO and info.sha is not None and len(info.sha) == 40
    siblings = {s.rfilename: s for s in info.siblings or []}
    assert siblings["config.json"].size == len(FILES["config.json"])
    assert siblings["config.json"].lfs is None
    lfs = siblings["model.safetensors"].lfs
    assert lfs is not None and lfs.sha256 == hashlib.sha256(WEIGHTS).hexdigest()
    assert siblings["model.safetensors"].size == lfs.size == 10**12  # the reported lie
    assert sorted(HfApi().list_repo_files(REPO)) == sorted(FILES)
    top = {e.path for e in HfApi().list_repo_tree(REPO)}
    assert top == {"config.json", "model.safetensors", "README.md", "sub"}
    meta = get_hf_file_metadata(hf_hub_url(REPO, "model.safetensors"))
    assert (meta.commit_hash, meta.etag, meta.size) == (info.sha, lfs.sha256, len(WEIGHTS))


def test_snapshot_download_with_patterns(hub: HubStandIn, tmp_path: Path) -> None:
    folder = Path(
        snapshot_download(REPO, cache_dir=tmp_path, allow_patterns=["*.json"], token=False)
    )
    got = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}
    assert got == {"config.json", "sub/tokenizer.json"}
    assert (folder / "sub/tokenizer.json").read_bytes() == b"{}"
    fetched = {path for method, path, _ in hub.requests if method == "GET" and "/resolve/" in path}
    assert not any(path.endswith((".safetensors", ".md")) for path in fetched)
    folder = Path(snapshot_download(REPO, cache_dir=tmp_path / "b", ignore_patterns=["*.json"]))
    assert (folder / "model.safetensors").read_bytes() == WEIGHTS
    assert not (folder / "config.json").exists() and (folder / "README.md").exists()


def test_download_resumes_after_a_cut(
    hub: HubStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # http_get writes whole DOWNLOAD_CHUNK_SIZE chunks (10 MiB): on a cut the bytes of the
    # unfinished chunk are dropped, and the retry (same call, after 1 s) asks from the last
    # whole chunk on. 1 KiB chunks: 4 of the 5000 bytes sent survive.
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 1024)
    hub.cut_after("model.safetensors", 5000)
    path = hf_hub_download(REPO, "model.safetensors", cache_dir=tmp_path, token=False)
    assert Path(path).read_bytes() == WEIGHTS
    ranges = [r for m, p, r in hub.requests if m == "GET" and p.endswith(".safetensors")]
    assert ranges == [None, "bytes=4096-"]
    assert not list(tmp_path.rglob("*.incomplete"))


def test_ranges_and_headers(hub: HubStandIn) -> None:
    url = hf_hub_url(REPO, "model.safetensors", endpoint=hub.url)
    head = httpx.head(url)
    assert head.headers["content-length"] == head.headers["x-linked-size"] == str(len(WEIGHTS))
    assert head.headers["etag"] == f'"{hashlib.sha256(WEIGHTS).hexdigest()}"'
    part = httpx.get(url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == WEIGHTS[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(WEIGHTS)}"
    assert httpx.get(url, headers={"Range": f"bytes={len(WEIGHTS)}-"}).status_code == 416
    hub.throttle_bytes_per_s = 20_000
    start = time.monotonic()
    assert httpx.get(url, headers={"Range": "bytes=0-3999"}).content == WEIGHTS[:4000]
    assert time.monotonic() - start > 0.15
    ranges = [None, "bytes=100-199", f"bytes={len(WEIGHTS)}-", "bytes=0-3999"]
    assert [r[2] for r in hub.requests] == ranges


def test_errors(hub: HubStandIn, tmp_path: Path) -> None:
    with pytest.raises(RepositoryNotFoundError):
        HfApi().model_info("org/missing", token=False)
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("org/missing", "config.json", cache_dir=tmp_path, token=False)
    with pytest.raises(RemoteEntryNotFoundError):
        hf_hub_download(REPO, "missing.bin", cache_dir=tmp_path, token=False)
    with pytest.raises(RevisionNotFoundError):
        HfApi().model_info(REPO, revision="v9", token=False)


def test_gated_and_private_repos(hub: HubStandIn, tmp_path: Path) -> None:
    hub.add_repo("org/gated", {"config.json": b"{}"}, gated=True)
    hub.add_repo("org/private", {"config.json": b"[]"}, private=True)
    assert HfApi().model_info("org/gated", token=False).gated == "manual"  # info stays public
    for token in (False, "hf_wrong"):
        with pytest.raises(GatedRepoError, match="restricted"):
            hf_hub_download("org/gated", "config.json", cache_dir=tmp_path, token=token)
        with pytest.raises(RepositoryNotFoundError):
            HfApi().model_info("org/private", token=token)
    path = hf_hub_download("org/gated", "config.json", cache_dir=tmp_path, token=hub.token)
    assert Path(path).read_bytes() == b"{}"
    folder = snapshot_download("org/private", cache_dir=tmp_path, token=hub.token)
    assert (Path(folder) / "config.json").read_bytes() == b"[]"
