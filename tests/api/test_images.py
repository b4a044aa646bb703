"""Image generation and editing over HTTP on diffusers: a tiny, randomly
initialised Stable Diffusion pipeline built in the test
(tests/handlers/images/tiny_diffusers.py), loaded through load-model. The
pictures are noise; the tests check sizes, seeds, edits, streams and errors."""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import pytest
from PIL import Image

from tests.helpers import Server, start_server, stop_server

sys.path.insert(0, str(Path(__file__).parents[1] / "handlers" / "images"))

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("diffusers") is None,
    reason="diffusers is not installed: pip install 'bodega[images]'",
)
MODEL = "tiny-sd"
FOLDERS: dict[str, Path] = {}  # the tiny pipeline the module's server serves


@pytest.fixture(scope="module")
def images_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    from tiny_diffusers import build_tiny_diffusers

    folder = build_tiny_diffusers(tmp_path_factory.mktemp("tiny-sd"))
    FOLDERS["pipeline"] = folder
    config = tmp_path_factory.mktemp("cfg") / "config.yaml"
    config.write_text(
        "models:\n"
        f"  - model_path: {folder}\n    model_id: {MODEL}\n    model_type: image-edit\n"
        "    n_threads: 1\n"
    )
    server = start_server("--config", str(config), env={"HF_HUB_OFFLINE": "1"})
    yield server
    stop_server(server)


def decode(b64: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64)))


def generate(server: Server, **fields: Any) -> httpx.Response:
    body = {"model": MODEL, "prompt": "a red fox", "steps": 2, "seed": 7, **fields}
    return server.client.post("/v1/images/generations", json=body, timeout=120)


def test_generation_shape_size_and_format(images_server: Server) -> None:
    r = generate(images_server, size="64x48", output_format="jpeg")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["size"] == "64x48" and body["output_format"] == "jpeg"
    assert body["usage"]["input_tokens"] > 0
    picture = decode(body["data"][0]["b64_json"])
    assert picture.format == "JPEG" and picture.size == (64, 48)


def test_same_seed_same_pixels_and_n_images_differ(images_server: Server) -> None:
    first = generate(images_server, n=2).json()["data"]
    again = generate(images_server, n=2).json()["data"]
    assert [d["b64_json"] for d in first] == [d["b64_json"] for d in again]
    assert first[0]["b64_json"] != first[1]["b64_json"]
    # image i is seeded seed + i
    second = generate(images_server, seed=8).json()["data"][0]
    assert np.array_equal(
        np.asarray(decode(second["b64_json"])), np.asarray(decode(first[1]["b64_json"]))
    )


def test_streaming_events_in_order(images_server: Server) -> None:
    body = {
        "model": MODEL,
        "prompt": "a fox",
        "steps": 4,
        "seed": 1,
        "stream": True,
        "partial_images": 2,
    }
    events: list[dict[str, Any]] = []
    with images_server.client.stream("POST", "/v1/images/generations", json=body) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    kinds = [e["type"] for e in events]
    assert kinds.count("image_generation.progress") == 4
    assert kinds.count("image_generation.partial_image") == 2
    assert kinds[-1] == "image_generation.completed"
    steps = [e["step"] for e in events if e["type"] == "image_generation.progress"]
    assert steps == [1, 2, 3, 4]
    partial = [e for e in events if e["type"] == "image_generation.partial_image"]
    assert [p["partial_image_index"] for p in partial] == [0, 1]
    assert decode(events[-1]["b64_json"]).size == (64, 64)


def test_edit_with_a_mask_changes_only_the_masked_part(images_server: Server) -> None:
    original = Image.new("RGB", (64, 64), (10, 200, 30))
    mask = Image.new("RGBA", (64, 64), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, 32, 64))  # transparent: the left half is edited
    files = [
        ("image", ("in.png", png(original), "image/png")),
        ("mask", ("mask.png", png(mask), "image/png")),
    ]
    data = {"model": MODEL, "prompt": "a fox", "steps": "4", "strength": "1.0", "seed": "3"}
    r = images_server.client.post("/v1/images/edits", data=data, files=files, timeout=120)
    assert r.status_code == 200, r.text
    edited = np.asarray(decode(r.json()["data"][0]["b64_json"]).convert("RGB")).astype(int)
    assert np.array_equal(edited[:, 32:], np.asarray(original)[:, 32:])
    assert np.abs(edited[:, :32] - np.asarray(original)[:, :32]).mean() > 5
    plain = images_server.client.post("/v1/images/edits", data=data, files=files[:1], timeout=120)
    assert plain.status_code == 200, plain.text
    whole = np.asarray(decode(plain.json()["data"][0]["b64_json"]).convert("RGB")).astype(int)
    assert np.abs(whole[:, 32:] - np.asarray(original)[:, 32:]).mean() > 5


def png(picture: Image.Image) -> bytes:
    out = io.BytesIO()
    picture.save(out, format="PNG")
    return out.getvalue()


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"size": "65x64"}, "size"),
        ({"size": "big"}, "size"),
        ({"n": 11}, "n"),
        ({"quality": "ultra"}, "quality"),
        ({"output_format": "gif"}, "output_format"),
        ({"background": "transparent", "output_format": "jpeg"}, "background"),
        ({"response_format": "url"}, "response_format"),
        ({"prompt": ""}, "prompt"),
        ({"prompt": "word " * 100}, "prompt"),
        ({"partial_images": 2}, "partial_images"),
    ],
)
def test_bad_fields_are_400s_naming_them(
    images_server: Server, fields: dict[str, Any], param: str
) -> None:
    r = generate(images_server, **fields)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param


def test_bad_uploads(images_server: Server) -> None:
    data = {"model": MODEL, "prompt": "a fox", "steps": "2"}
    not_image = [("image", ("x.png", b"hello", "image/png"))]
    r = images_server.client.post("/v1/images/edits", data=data, files=not_image)
    assert r.status_code == 400 and r.json()["error"]["param"] == "image"
    opaque = [
        ("image", ("in.png", png(Image.new("RGB", (64, 64))), "image/png")),
        ("mask", ("m.png", png(Image.new("RGB", (64, 64))), "image/png")),
    ]
    r = images_server.client.post("/v1/images/edits", data=data, files=opaque)
    assert r.status_code == 400 and r.json()["error"]["param"] == "mask"
    wrong_size = [opaque[0], ("mask", ("m.png", png(Image.new("RGBA", (32, 32))), "image/png"))]
    r = images_server.client.post("/v1/images/edits", data=data, files=wrong_size)
    assert r.status_code == 400 and r.json()["error"]["param"] == "mask"


def test_model_types_are_kept_apart(images_server: Server) -> None:
    chat = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    r = images_server.client.post("/v1/chat/completions", json=chat)
    assert r.status_code == 400 and r.json()["error"]["param"] == "model"
    assert "/v1/images/generations" in r.json()["error"]["message"]


def test_the_openai_sdk_generates_and_edits(images_server: Server) -> None:
    client = openai.OpenAI(base_url=f"{images_server.url}/v1", api_key="none")
    made = client.images.generate(
        model=MODEL, prompt="a fox", size="64x64", extra_body={"steps": 2, "seed": 5}
    )
    assert made.data and made.data[0].b64_json
    assert decode(made.data[0].b64_json).size == (64, 64)
    edited = client.images.edit(
        model=MODEL,
        image=("in.png", png(Image.new("RGB", (64, 64), "blue")), "image/png"),
        prompt="a fox",
        extra_body={"steps": 2, "seed": 5},
    )
    assert edited.data and decode(edited.data[0].b64_json).size == (64, 64)


def test_a_client_that_leaves_stops_the_denoising(images_server: Server) -> None:
    from tests.helpers import idle_after_leaving

    # 512x512 takes ~0.5 s a step here: 40 steps would run for ~20 s.
    body = {"model": MODEL, "prompt": "a fox", "steps": 40, "size": "512x512", "stream": True}
    seconds = idle_after_leaving(images_server, MODEL, body, step=1)
    assert seconds < 5, "the handler went on denoising after the client left"
    assert generate(images_server).status_code == 200


def test_lora_adapters_change_the_picture_by_their_scale(
    images_server: Server, tmp_path: Path
) -> None:
    from tiny_diffusers import build_tiny_lora

    lora = build_tiny_lora(FOLDERS["pipeline"], tmp_path / "lora")
    base = generate(images_server).json()["data"][0]["b64_json"]
    pixels: dict[str, np.ndarray] = {}
    for model_id, scales in (("sd-lora", None), ("sd-lora-off", [0.0])):
        body = {
            "model_path": str(FOLDERS["pipeline"]), "model_id": model_id,
            "model_type": "image-generation", "lora_paths": [str(lora)], "n_threads": 1,
        }  # fmt: skip
        if scales is not None:
            body["lora_scales"] = scales
        r = images_server.client.post("/v1/admin/load-model", json=body, timeout=120)
        assert r.status_code == 201, r.text
        try:
            assert r.json()["model"]["lora_paths"] == [str(lora)]
            answer = generate(images_server, model=model_id).json()
            pixels[model_id] = np.asarray(decode(answer["data"][0]["b64_json"])).astype(int)
        finally:
            images_server.client.delete(f"/v1/admin/unload-model/{model_id}")
    plain = np.asarray(decode(base)).astype(int)
    assert np.abs(pixels["sd-lora"] - plain).mean() > 1  # the adapter reached the UNet
    assert np.array_equal(pixels["sd-lora-off"], plain)  # at scale 0 it changes nothing
    empty = tmp_path / "empty"
    empty.mkdir()
    bad = {
        "model_path": str(FOLDERS["pipeline"]), "model_id": "sd-bad-lora",
        "model_type": "image-generation", "lora_paths": [str(empty)],
    }  # fmt: skip
    r = images_server.client.post("/v1/admin/load-model", json=bad, timeout=120)
    assert r.status_code == 400 and "lora_paths[0]" in r.json()["error"]["message"]


def test_image_requests_need_an_image_model(server: Server) -> None:
    body = {"prompt": "a fox"}
    r = server.client.post("/v1/images/generations", json=body)
    assert r.status_code == 503 and "No image model" in r.json()["error"]["message"]
    r = server.client.post("/v1/images/generations", json={**body, "model": "smollm2-135m"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "model"
    assert "/v1/chat/completions" in r.json()["error"]["message"]
