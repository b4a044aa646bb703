"""The inference-service vision API (``/api/v1/vision/*``) on the tiny
multimodal models, and the official ``openai`` SDK sending images."""

from __future__ import annotations

import base64
import math
import os
from pathlib import Path

import openai
import pytest

from tests.vision_server import VisionServer, data_url, image_part, png

RED = png("red")


def test_health_names_the_serving_model(vision_server: VisionServer, tiny_vlm: str) -> None:
    r = vision_server.server.client.get("/api/v1/vision/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "healthy" and body["model_loaded"] is True
    assert tiny_vlm in body["models"] and body["model_id"] in body["models"]


def test_classify_base64_has_the_documented_shape(
    vision_server: VisionServer, tiny_vlm: str
) -> None:
    body = {"image_base64": base64.b64encode(RED).decode(), "model": tiny_vlm, "max_tokens": 3}
    r = vision_server.server.client.post("/api/v1/vision/classify", json=body)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert set(answer) == {"classification", "raw_response", "confidence", "model_id", "usage"}
    assert answer["model_id"] == tiny_vlm
    assert answer["usage"]["completion_tokens"] == 3
    assert answer["usage"]["total_tokens"] == (
        answer["usage"]["prompt_tokens"] + answer["usage"]["completion_tokens"]
    )
    # The probability of the answer: in (0, 1], and the same for the same greedy request.
    assert 0 < answer["confidence"] <= 1
    again = vision_server.server.client.post("/api/v1/vision/classify", json=body).json()
    assert math.isclose(again["confidence"], answer["confidence"], rel_tol=1e-4)
    assert again["raw_response"] == answer["raw_response"]


def test_classify_reads_paths_only_under_the_image_root(
    vision_server: VisionServer, tiny_vlm: str, tmp_path: Path
) -> None:
    client = vision_server.server.client
    (vision_server.images / "photo.png").write_bytes(RED)
    outside = tmp_path / "secret.png"
    outside.write_bytes(RED)
    link = vision_server.images / "link.png"
    if not link.exists():
        os.symlink(outside, link)
    ok = client.post("/api/v1/vision/classify", json={"image_path": "photo.png", "max_tokens": 2})
    assert ok.status_code == 200, ok.text
    absolute = str(vision_server.images / "photo.png")
    assert client.post("/api/v1/vision/classify", json={"image_path": absolute}).status_code == 200
    refused = {
        "../secret.png": "'..'",
        str(outside): "outside vision.image_root",
        "link.png": "outside vision.image_root",
        "missing.png": "does not exist",
    }
    for path, message in refused.items():
        r = client.post("/api/v1/vision/classify", json={"image_path": path})
        assert r.status_code == 400, (path, r.text)
        assert r.json()["error"]["param"] == "image_path"
        assert message in r.json()["error"]["message"]


def test_classify_needs_exactly_one_image(vision_server: VisionServer, tiny_vlm: str) -> None:
    client = vision_server.server.client
    assert client.post("/api/v1/vision/classify", json={}).status_code == 400
    both = {"image_path": "photo.png", "image_base64": base64.b64encode(RED).decode()}
    assert client.post("/api/v1/vision/classify", json=both).status_code == 400
    bad = client.post("/api/v1/vision/classify", json={"image_base64": "bm90IGFuIGltYWdl"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "image_base64"


def test_batch_fails_bad_images_alone(vision_server: VisionServer, tiny_vlm: str) -> None:
    (vision_server.images / "photo.png").write_bytes(RED)
    body = {
        "image_paths": ["photo.png", "missing.png"],
        "images_base64": [base64.b64encode(png("blue")).decode(), "bm90IGFuIGltYWdl"],
        "max_tokens": 2,
    }
    r = vision_server.server.client.post("/api/v1/vision/classify/batch", json=body)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["total_images"] == 4 and answer["successful"] == 2 and answer["failed"] == 2
    assert answer["model_id"] and answer["processing_time_seconds"] > 0
    assert answer["images_per_second"] > 0
    results = answer["results"]
    assert results[0]["image_path"] == "photo.png" and results[0]["error"] is None
    assert results[0]["raw_response"] is not None and 0 < results[0]["confidence"] <= 1
    assert "image_paths[1]" in results[1]["error"] and results[1]["classification"] is None
    assert results[2]["error"] is None
    assert "images_base64[1]" in results[3]["error"]


def test_load_and_unload_from_the_configuration(tmp_path: Path) -> None:
    """A server whose configuration names a multimodal model it does not load at start."""
    from tests.helpers import start_server, stop_server

    config = tmp_path / "config.yaml"
    config.write_text("models: []\n")
    server = start_server("--config", str(config))
    try:
        r = server.client.get("/api/v1/vision/health")
        assert r.status_code == 503 and r.json()["model_loaded"] is False
        r = server.client.post("/api/v1/vision/load")
        assert r.status_code == 400 and r.json()["error"]["param"] == "model"
        r = server.client.post("/api/v1/vision/classify", json={"image_base64": "x"})
        assert r.status_code == 503
        assert server.client.post("/api/v1/vision/unload").json() == {
            "status": "not_loaded",
            "model_id": None,
        }
    finally:
        stop_server(server)


def test_vision_load_and_unload(gguf_vlm_files: tuple[Path, Path], tmp_path: Path) -> None:
    """/load loads the configuration's multimodal model; /unload unloads it."""
    from tests.helpers import start_server, stop_server

    config = tmp_path / "config.yaml"
    config.write_text(
        "models:\n"
        f"  - model_path: {gguf_vlm_files[0]}\n"
        "    model_id: configured-vlm\n"
        "    model_type: multimodal\n"
        "    n_threads: 1\n"
    )
    server = start_server("--config", str(config))
    try:
        assert server.client.get("/api/v1/vision/health").json()["model_loaded"] is True
        assert server.client.post("/api/v1/vision/unload").json()["status"] == "unloaded"
        assert server.client.get("/api/v1/vision/health").status_code == 503
        loaded = server.client.post("/api/v1/vision/load", timeout=120)
        assert loaded.json() == {"status": "loaded", "model_id": "configured-vlm"}
        again = server.client.post("/api/v1/vision/load", json={"model": "configured-vlm"})
        assert again.json()["status"] == "already_loaded"
        body = {"image_base64": base64.b64encode(RED).decode(), "max_tokens": 2}
        r = server.client.post("/api/v1/vision/classify", json=body)
        assert r.status_code == 200 and r.json()["model_id"] == "configured-vlm"
    finally:
        stop_server(server)


@pytest.mark.parametrize("source", ["base64", "url"])
def test_the_openai_sdk_sends_images(
    vision_server: VisionServer, tiny_vlm: str, source: str
) -> None:
    (vision_server.images / "sdk.png").write_bytes(RED)
    url = data_url(RED) if source == "base64" else f"{vision_server.site}/sdk.png"
    client = openai.OpenAI(base_url=f"{vision_server.server.url}/v1", api_key="none")
    answer = client.chat.completions.create(
        model=tiny_vlm,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Describe the image."},
                    image_part(url),  # type: ignore[list-item]
                ],
            }
        ],
        max_tokens=4,
        temperature=0,
    )
    assert answer.choices[0].finish_reason == "length"
    assert answer.usage is not None and answer.usage.completion_tokens == 4
    text_only = client.chat.completions.create(
        model=tiny_vlm,
        messages=[{"role": "user", "content": "Describe the image."}],
        max_tokens=1,
    )
    assert text_only.usage is not None
    assert answer.usage.prompt_tokens > text_only.usage.prompt_tokens
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model=tiny_vlm,
            messages=[{"role": "user", "content": [image_part("file:///etc/hosts")]}],  # type: ignore[list-item]
        )
    assert refused.value.body["param"] == "messages[0].content[0].image_url.url"  # type: ignore[index]
