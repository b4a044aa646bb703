"""A server for the vision tests: remote images allowed from 127.0.0.1 (a
local HTTP server stands in for the web), ``vision.image_root`` set, and the
tiny test-built multimodal models loaded through ``load-model``."""

from __future__ import annotations

import base64
import importlib.util
import io
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from tests.helpers import Server, start_server, stop_server

sys.path.insert(0, str(Path(__file__).parent / "handlers" / "vision"))
from tiny_vlm import build_tiny_vlm

TINY_VLM = "tiny-qwen2-vl"
HAS_MLX_VLM = importlib.util.find_spec("mlx_vlm") is not None


def png(color: str | tuple[int, int, int], size: tuple[int, int] = (80, 60)) -> bytes:
    """A plain image of one colour, as PNG bytes."""
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format="PNG")
    return out.getvalue()


def data_url(data: bytes, mime: str = "image/png") -> str:
    """``data`` as a base64 data: URL."""
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def image_part(url: str) -> dict[str, object]:
    """An OpenAI ``image_url`` content part."""
    return {"type": "image_url", "image_url": {"url": url}}


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@dataclass
class VisionServer:
    """The server, the folder its local image site serves, and that site's URL."""

    server: Server
    images: Path
    site: str


@pytest.fixture(scope="session")
def vision_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VisionServer]:
    """A server with remote images from 127.0.0.1 and an image root."""
    root = tmp_path_factory.mktemp("vision")
    images = root / "images"
    images.mkdir()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(images)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    config = root / "config.yaml"
    config.write_text(
        "server:\n"
        '  remote_image_allowed_hosts: ["127.0.0.1"]\n'
        "  max_image_bytes: 200000\n"
        f"vision:\n  image_root: {images}\n"
        "models: []\n"
    )
    server = start_server("--config", str(config), env={"HF_HUB_OFFLINE": "1"})
    try:
        yield VisionServer(server, images, f"http://127.0.0.1:{httpd.server_address[1]}")
    finally:
        stop_server(server)
        httpd.shutdown()


@pytest.fixture(scope="session")
def tiny_vlm(vision_server: VisionServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The tiny Qwen2-VL, loaded on mlx-vlm (two slots, prompt cache on)."""
    if not HAS_MLX_VLM:
        pytest.skip("mlx-vlm is not installed: pip install 'bodega[mlx]'")
    folder = build_tiny_vlm(tmp_path_factory.mktemp("tiny-vlm"))
    body = {
        "model_path": str(folder),
        "model_id": TINY_VLM,
        "model_type": "multimodal",
        "max_concurrency": 2,
        "max_images": 4,
    }
    r = vision_server.server.client.post("/v1/admin/load-model", json=body, timeout=120)
    assert r.status_code == 201, r.text
    assert r.json()["model"]["engine"] == "mlx"
    return TINY_VLM


TINY_GGUF_VLM = "tiny-gguf-vlm"


@pytest.fixture(scope="session")
def gguf_vlm_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny llama text GGUF and a tiny gemma3 projector GGUF beside it."""
    from tiny_mmproj import TEXT_HIDDEN, build_tiny_mmproj, build_tiny_text_gguf

    folder = tmp_path_factory.mktemp("tiny-gguf-vlm")
    model = build_tiny_text_gguf(folder / "tiny-llama.gguf")
    return model, build_tiny_mmproj(folder / "mmproj-tiny-llama-f32.gguf", TEXT_HIDDEN)


@pytest.fixture(scope="session")
def tiny_gguf_vlm(vision_server: VisionServer, gguf_vlm_files: tuple[Path, Path]) -> str:
    """The tiny GGUF model with its projector on llama.cpp (found beside it), two slots."""
    body = {
        "model_path": str(gguf_vlm_files[0]),
        "model_id": TINY_GGUF_VLM,
        "model_type": "multimodal",
        "max_concurrency": 2,
        "n_threads": 1,
    }
    r = vision_server.server.client.post("/v1/admin/load-model", json=body, timeout=120)
    assert r.status_code == 201, r.text
    assert r.json()["model"]["engine"] == "llamacpp"
    return TINY_GGUF_VLM
