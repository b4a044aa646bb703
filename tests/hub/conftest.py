"""A local hub stand-in serving small repos built from the embedded models'
files, and servers whose Hugging Face cache starts empty and whose hub it is."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bodega.settings import embedded_embeddings_path, embedded_lm_path, embedded_whisper_path
from tests.helpers import Server, start_server, stop_server
from tests.hub_standin import HubStandIn

MiB = 1024 * 1024
GGUF_REPO = "acme/smollm2-gguf"
EMBEDDINGS_REPO = "acme/minilm"
WHISPER_REPO = "acme/whisper-tiny"
BIG_REPO = "acme/big"  # one 24 MiB file: progress and resume
BIG_FILE = "weights.bin"


def folder_files(folder: str) -> dict[str, Path]:
    """Every file under ``folder`` by its path inside it."""
    root = Path(folder)
    return {p.relative_to(root).as_posix(): p for p in root.rglob("*") if p.is_file()}


def big_payload() -> bytes:
    """Incompressible bytes, the same in every run."""
    return random.Random(7).randbytes(24 * MiB)


@pytest.fixture(scope="session")
def hub() -> Iterator[HubStandIn]:
    """The stand-in, with the test repos."""
    lm, embeddings = embedded_lm_path(), embedded_embeddings_path()
    whisper = embedded_whisper_path()
    if lm is None or embeddings is None or whisper is None:
        pytest.skip("the embedded models are missing: make install")
    with HubStandIn() as stand_in:
        stand_in.add_repo(
            GGUF_REPO,
            {
                "SmolLM2-135M-Instruct.Q4_1.gguf": Path(lm),
                "SmolLM2-135M-Instruct.Q8_0.gguf": Path(lm),
                "README.md": b"# SmolLM2 135M, two quantizations\n",
            },
        )
        stand_in.add_repo(EMBEDDINGS_REPO, folder_files(embeddings))
        stand_in.add_repo(WHISPER_REPO, folder_files(whisper))
        stand_in.add_repo(BIG_REPO, {BIG_FILE: big_payload(), "config.json": b"{}"})
        stand_in.add_repo("acme/gated", {"config.json": b"{}"}, gated=True)
        stand_in.add_repo("acme/huge", {"model.safetensors": b"x" * 1024})
        stand_in.report_size("acme/huge/model.safetensors", 10**15)
        yield stand_in


HubServer = Callable[..., Server]


@pytest.fixture
def hub_server(hub: HubStandIn, tmp_path: Path) -> Iterator[HubServer]:
    """Start servers on an empty cache of their own, with ``config`` as config.yaml."""
    started: list[Server] = []
    hub.requests.clear()

    def start(config: str = "models: []\n", **env: str) -> Server:
        path = tmp_path / f"config-{len(started)}.yaml"
        path.write_text(config)
        hf_home = env.pop("HF_HOME", str(tmp_path / "hf"))
        server = start_server("--config", str(path), env={**hub.env(), "HF_HOME": hf_home, **env})
        started.append(server)
        return server

    yield start
    for server in started:
        stop_server(server)
    hub.throttle_bytes_per_s = None
