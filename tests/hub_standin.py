"""A local HTTP stand-in for the Hugging Face Hub (huggingface_hub 2.x), for tests offline.

Serves model info (``/api/models/{repo}[/revision/{rev}]``, sizes with ``?blobs=true``), tree
listings (``/api/models/{repo}/tree/{rev}[/{dir}]``) and files (``HEAD``/``GET /{repo}/resolve/
{rev}/{path}``, served directly, with ``Range``), and errors with the ``X-Error-Code`` that
``hf_raise_for_status`` reads. A gated repo's info and tree are public, its files need
``Authorization: Bearer <hub.token>``; a private repo needs it always. Subprocess:
``env={**os.environ, **hub.env()}``. In-process: ``with hub.patched():``, as huggingface_hub
reads ``HF_ENDPOINT`` and ``HF_HUB_OFFLINE`` (which some test modules set) once, at import.
Hook paths (``cut_after``, ``report_size``) are ``"path/in/repo"`` or ``"org/name/path/in/repo"``.
"""

from __future__ import annotations

import hashlib
import io
import json
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import parse_qs, unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth", ".onnx", ".npz", ".h5", ".ckpt")
LFS_MIN_SIZE = 10 * 1024 * 1024  # bigger files are LFS whatever their suffix
CHUNK = 1024 * 1024
DATE = "2025-01-01T00:00:00.000Z"
JSON = {"Content-Type": "application/json"}
Content = bytes | Path  # served from memory, or streamed from disk


def _reader(content: Content) -> BinaryIO:
    return io.BytesIO(content) if isinstance(content, bytes) else content.open("rb")


@dataclass(frozen=True)
class HubFile:
    """One file of a repo: content (in memory or on disk), git blob id, LFS sha256 and pointer."""

    path: str
    content: Content
    size: int
    blob_id: str  # of the content, or of the LFS pointer for LFS files
    sha256: str | None = None  # LFS files only
    pointer_size: int | None = None

    @classmethod
    def make(cls, path: str, content: Content) -> HubFile:
        """Hash ``content``: LFS when big or of a weights suffix, like the Hub's .gitattributes."""
        size = len(content) if isinstance(content, bytes) else content.stat().st_size
        lfs = size >= LFS_MIN_SIZE or path.endswith(LFS_SUFFIXES)
        h = hashlib.sha256() if lfs else hashlib.sha1(b"blob %d\0" % size)
        with _reader(content) as f:
            while chunk := f.read(CHUNK):
                h.update(chunk)
        if not lfs:
            return cls(path, content, size, h.hexdigest())
        head = f"version https://git-lfs.github.com/spec/v1\noid sha256:{h.hexdigest()}\n"
        pointer = f"{head}size {size}\n".encode()
        blob_id = hashlib.sha1(b"blob %d\0" % len(pointer) + pointer).hexdigest()
        return cls(path, content, size, blob_id, h.hexdigest(), len(pointer))


@dataclass(frozen=True)
class HubRepo:
    """A model repo with one commit."""

    repo_id: str
    files: dict[str, HubFile]
    sha: str
    gated: bool
    private: bool


class HubError(Exception):
    """An error answer: status, ``X-Error-Code`` (or ``""``), message, ``X-Repo-Commit``."""

    def __init__(self, status: int, code: str, message: str, commit: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.commit = status, code, message, commit


class HubStandIn:
    """The stand-in, serving from a background thread until ``close()`` or the ``with`` ends."""

    def __init__(self, token: str = "hf_standin_token") -> None:
        self.token = token
        self.throttle_bytes_per_s: int | None = None  # read per chunk: may change mid-download
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Range); copy it
        self._repos: dict[str, HubRepo] = {}
        self._cuts: dict[str, int] = {}
        self._sizes: dict[str, int] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.hub = self  # type: ignore[attr-defined]
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> HubStandIn:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop serving and close the listening socket."""
        self._server.shutdown()
        self._server.server_close()

    def add_repo(
        self, repo_id: str, files: Mapping[str, Content], gated: bool = False, private: bool = False
    ) -> str:
        """Register a model repo with one commit; return the commit sha (from the content)."""
        made = {path: HubFile.make(path, content) for path, content in sorted(files.items())}
        listing = "".join(f"{p}\0{f.blob_id}\n" for p, f in made.items())
        sha = hashlib.sha1(f"{repo_id}\n{listing}".encode()).hexdigest()
        with self._lock:  # a new dict: the handler threads iterate over it without the lock
            self._repos = self._repos | {repo_id: HubRepo(repo_id, made, sha, gated, private)}
        return sha

    def cut_after(self, path: str, nbytes: int) -> None:
        """The next GET of ``path`` sends ``nbytes`` of its body, then closes (once)."""
        with self._lock:
            self._cuts[path] = nbytes

    def report_size(self, path: str, size: int) -> None:
        """Report ``size`` for ``path`` in model info and tree listings (HEAD and GET tell true)."""
        with self._lock:
            self._sizes[path] = size

    def env(self) -> dict[str, str]:
        """Environment variables that point a huggingface_hub subprocess here (online)."""
        return {"HF_ENDPOINT": self.url, "HF_HUB_OFFLINE": "0"}

    @contextmanager
    def patched(self) -> Iterator[None]:
        """Point the imported huggingface_hub here: its constants ENDPOINT,
        HUGGINGFACE_CO_URL_TEMPLATE, HF_HUB_OFFLINE and the HfApi of its module functions."""
        from huggingface_hub import constants as c
        from huggingface_hub import hf_api

        saved = (c.ENDPOINT, c.HUGGINGFACE_CO_URL_TEMPLATE, c.HF_HUB_OFFLINE, hf_api.api.endpoint)
        c.ENDPOINT = hf_api.api.endpoint = self.url
        c.HUGGINGFACE_CO_URL_TEMPLATE = self.url + "/{repo_id}/resolve/{revision}/{filename}"
        c.HF_HUB_OFFLINE = False
        try:
            yield
        finally:
            c.ENDPOINT, c.HUGGINGFACE_CO_URL_TEMPLATE, c.HF_HUB_OFFLINE, hf_api.api.endpoint = saved

    def _hook(self, hooks: dict[str, Any], repo: HubRepo, path: str, pop: bool = False) -> Any:
        with self._lock:
            for key in (f"{repo.repo_id}/{path}", path):
                if key in hooks:
                    return hooks.pop(key) if pop else hooks[key]
        return None

    def _find(self, rest: str, auth: str | None) -> tuple[HubRepo, str, str]:
        """Split ``{repo}[/{kind}/{revision}[/{tail}]]`` (quoted) into repo, kind and tail;
        raise unless the repo, the access and the revision (main or the commit) are right."""
        repo = next((r for i, r in self._repos.items() if (rest + "/").startswith(i + "/")), None)
        if repo is None or (repo.private and auth != f"Bearer {self.token}"):
            raise HubError(401 if repo else 404, "RepoNotFound", "Repository not found")
        kind, revision, tail = [*rest[len(repo.repo_id) :].strip("/").split("/", 2), "", ""][:3]
        if repo.gated and kind == "resolve" and auth != f"Bearer {self.token}":
            msg = f"Access to model {repo.repo_id} is restricted"
            if auth is not None:
                raise HubError(403, "GatedRepo", msg + " and you are not in the authorized list.")
            msg += ". You must have access to it and be authenticated to access it. Please log in."
            raise HubError(401, "GatedRepo", msg)
        if unquote(revision) not in ("", "main", "refs/heads/main", repo.sha):
            raise HubError(404, "RevisionNotFound", f"Invalid rev id: {unquote(revision)}")
        return repo, kind, unquote(tail)

    def _meta(self, repo: HubRepo, f: HubFile, sha_key: str) -> dict[str, Any]:
        """Size and LFS fields of ``f`` as listed (``report_size`` applies here)."""
        reported = self._hook(self._sizes, repo, f.path)
        size = f.size if reported is None else int(reported)
        lfs = {sha_key: f.sha256, "size": size, "pointerSize": f.pointer_size}
        return {"size": size} | ({"lfs": lfs} if f.sha256 else {})

    def model_info(self, repo: HubRepo, blobs: bool) -> dict[str, Any]:
        """The JSON of ``GET /api/models/{repo}/revision/{revision}``."""
        siblings = [
            {"rfilename": f.path}
            | ({"blobId": f.blob_id} | self._meta(repo, f, "sha256") if blobs else {})
            for f in repo.files.values()
        ]
        info: dict[str, Any] = {"id": repo.repo_id, "modelId": repo.repo_id, "sha": repo.sha}
        info |= {"author": repo.repo_id.partition("/")[0], "private": repo.private, "tags": []}
        info |= {"gated": "manual" if repo.gated else False, "disabled": False, "downloads": 0}
        return info | {"lastModified": DATE, "createdAt": DATE, "siblings": siblings}

    def tree(self, repo: HubRepo, folder: str, recursive: bool) -> list[Any]:
        """The JSON of ``GET /api/models/{repo}/tree/{revision}/{folder}`` (a single page)."""
        prefix = folder.strip("/") + "/" if folder.strip("/") else ""
        dirs: dict[str, None] = {}
        files: list[dict[str, Any]] = []
        for f in repo.files.values():
            if f.path.startswith(prefix):
                parts = f.path[len(prefix) :].split("/")
                for depth in range(1, len(parts) if recursive else min(2, len(parts))):
                    dirs[prefix + "/".join(parts[:depth])] = None
                if recursive or len(parts) == 1:
                    meta = {"type": "file", "oid": f.blob_id, "path": f.path}
                    files.append(meta | self._meta(repo, f, "oid"))
        if prefix and not files and not dirs:
            raise HubError(404, "EntryNotFound", f"{folder} does not exist", repo.sha)
        sha1 = [(d, hashlib.sha1(d.encode()).hexdigest()) for d in dirs]
        return [{"type": "directory", "oid": o, "size": 0, "path": d} for d, o in sha1] + files


class _Handler(BaseHTTPRequestHandler):
    """Routes the requests to the ``HubStandIn`` of its server."""

    protocol_version = "HTTP/1.1"
    timeout = 60  # idle keep-alive connections end

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the requests are in ``hub.requests``."""

    def _route(self) -> None:
        hub: HubStandIn = self.server.hub  # type: ignore[attr-defined]
        url = urlsplit(self.path)
        flags = {k for k, v in parse_qs(url.query).items() if v[0].lower() in ("true", "1")}
        with hub._lock:
            hub.requests.append((self.command, unquote(url.path), self.headers.get("Range")))
        api = url.path.startswith("/api/models/")
        try:
            if not api and "/resolve/" not in url.path:
                raise HubError(404, "", f"Sorry, no route for {url.path}")
            rest = url.path.removeprefix("/api/models/").lstrip("/")
            repo, kind, tail = hub._find(rest, self.headers.get("Authorization"))
            if api and kind == "tree":
                data: Any = hub.tree(repo, tail, "recursive" in flags)
            elif api and kind in ("", "revision"):
                data = hub.model_info(repo, "blobs" in flags)
            elif not api and kind == "resolve":
                if tail not in repo.files:
                    raise HubError(404, "EntryNotFound", f"Entry not found: {tail}", repo.sha)
                return self._file(hub, repo, repo.files[tail])
            else:
                raise HubError(404, "", f"Sorry, no route for {url.path}")
            self._send(200, JSON, json.dumps(data).encode())
        except HubError as e:
            headers = JSON | {"X-Error-Code": e.code, "X-Error-Message": e.message}
            headers |= {"X-Repo-Commit": e.commit or ""}
            self._send(e.status, headers, json.dumps({"error": e.message}).encode())
        except OSError:  # the client went away
            self.close_connection = True

    do_GET = do_HEAD = _route

    def _send(self, status: int, headers: dict[str, str], body: bytes = b"") -> None:
        """Send status and the non-empty headers, then ``body`` unless HEAD."""
        self.send_response(status)
        for name, value in ({"Content-Length": str(len(body))} | headers).items():
            if value:
                self.send_header(name, value)
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _file(self, hub: HubStandIn, repo: HubRepo, f: HubFile) -> None:
        spec = self.headers.get("Range", "")
        first, _, last = spec.removeprefix("bytes=").strip().partition("-")
        partial = spec.startswith("bytes=") and first.isdigit() and (last or "0").isdigit()
        start, stop = 0, f.size
        if partial:  # bytes=N- or bytes=N-M; others (suffix, several ranges) get the whole file
            start, stop = int(first), min(f.size, int(last or f.size - 1) + 1)
            if start >= stop:
                return self._send(416, {"Content-Range": f"bytes */{f.size}"})
        headers = {"X-Repo-Commit": repo.sha, "ETag": f'"{f.sha256 or f.blob_id}"'}
        if f.sha256:
            headers |= {"X-Linked-Etag": f'"{f.sha256}"', "X-Linked-Size": str(f.size)}
        if partial:
            headers["Content-Range"] = f"bytes {start}-{stop - 1}/{f.size}"
        headers |= {"Content-Type": "application/octet-stream", "Content-Length": str(stop - start)}
        self._send(206 if partial else 200, headers)
        if self.command == "HEAD":
            return
        cut = hub._hook(hub._cuts, repo, f.path, pop=True)
        remaining = stop - start if cut is None else min(stop - start, cut)
        with _reader(f.content) as src:
            src.seek(start)
            while remaining > 0:
                rate = hub.throttle_bytes_per_s
                n = min(remaining, CHUNK if rate is None else max(1, min(CHUNK, rate // 20)))
                self.wfile.write(src.read(n))
                remaining -= n
                if rate is not None:
                    time.sleep(n / rate)
        if cut is not None:  # a FIN mid-body: httpx2 raises RemoteProtocolError
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_WR)
