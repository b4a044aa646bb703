"""Shared fixtures: a real server process on the embedded model."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import pytest

# Nothing in the tests reaches the real Hugging Face hub or the user's cache:
# every server and in-process call gets an empty cache and a hub that refuses
# connections, unless a test points them at its local stand-in.
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="bodega-test-hf-")
os.environ["HF_ENDPOINT"] = "http://127.0.0.1:9"
# Stored responses and RAG indexes go to a temporary data dir, not the user's.
os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="bodega-test-data-")
os.environ.pop("HF_HUB_CACHE", None)
os.environ.pop("HF_TOKEN", None)

from tests.helpers import Server, start_server, stop_server
from tests.vision_server import (  # noqa: F401  (fixtures)
    gguf_vlm_files,
    tiny_gguf_vlm,
    tiny_vlm,
    vision_server,
)


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    """One server on the embedded default model for the whole session."""
    srv = start_server()
    yield srv
    stop_server(srv)


@pytest.fixture(scope="session")
def mlx_model(server: Server) -> Iterator[str]:
    """The embedded GGUF on the mlx-lm engine (converted on load), 4 slots."""
    r = server.load("smollm2-135m-mlx", engine="mlx", max_concurrency=4, prompt_cache_size=4)
    assert r.status_code == 201, r.text
    assert r.json()["model"]["engine"] == "mlx"
    yield "smollm2-135m-mlx"


@pytest.fixture(params=["smollm2-135m", "smollm2-135m-mlx"], ids=["llamacpp", "mlx"])
def model(request: pytest.FixtureRequest, server: Server) -> str:
    """Each language-model engine in turn, on the embedded model."""
    if request.param.endswith("-mlx"):
        request.getfixturevalue("mlx_model")
    return str(request.param)
