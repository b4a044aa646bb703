"""mflux through the server: the tiny FLUX.1 (tests/handlers/images/tiny_mflux.py,
also as Kontext and Fill), FLUX.2 klein (tiny_flux2.py) and Z-Image (tiny_zimage.py)
loaded by real handler processes, generated and edited over HTTP and through the
official ``openai`` SDK, streamed, and cancelled by a client that leaves.

The tiny models need patches in the process that runs them (widths that are
literals in mflux's forward pass). A ``sitecustomize.py`` on the server's
``PYTHONPATH`` applies them in every handler it spawns (the handler keeps
``PYTHONPATH``) once mflux is imported; nothing in Bodega knows."""

from __future__ import annotations

import base64
import importlib.util
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import openai
import pytest
from PIL import Image

from tests.helpers import (
    Server,
    idle_after_leaving,
    sse_events,
    start_server,
    stop_server,
)

IMAGES = Path(__file__).parents[1] / "handlers" / "images"
MODEL = "tiny-flux"
FOLDERS: dict[str, Path] = {}  # the tiny models by the mflux config they were built for

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(
        importlib.util.find_spec("mflux") is None,
        reason="mflux is not installed: pip install --no-deps mflux==0.24.0 (make install)",
    ),
]

SITECUSTOMIZE = f"""
import importlib, importlib.machinery, sys
sys.path.insert(0, {str(IMAGES)!r})
# Patched once mflux's initializer is imported, as the engine does it: not at
# start, where importing mflux would bring in transformers before the handler
# keeps torch out (engine_loader.import_engine).
TRIGGERS = {{
    "mflux.models.flux.flux_initializer": "tiny_mflux",
    "mflux.models.z_image.z_image_initializer": "tiny_zimage",
    "mflux.models.flux2.flux2_initializer": "tiny_flux2",
}}


class Patcher:
    def find_spec(self, name, path, target=None):
        if name not in TRIGGERS:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            for owner, attr, value in importlib.import_module(TRIGGERS[name])._patches():
                setattr(owner, attr, value)

        spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, Patcher())
"""


@pytest.fixture(scope="module")
def flux_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    import sys

    sys.path.insert(0, str(IMAGES))
    from tiny_flux2 import build_tiny_flux2
    from tiny_mflux import build_tiny_mflux
    from tiny_zimage import build_tiny_zimage

    folder = build_tiny_mflux(tmp_path_factory.mktemp("tiny-flux"))
    FOLDERS["dev"] = folder
    FOLDERS["dev-fill"] = build_tiny_mflux(tmp_path_factory.mktemp("tiny-fill"), "dev-fill")
    FOLDERS["z-image"] = build_tiny_zimage(tmp_path_factory.mktemp("tiny-zimage"))
    FOLDERS["flux2"] = build_tiny_flux2(tmp_path_factory.mktemp("tiny-flux2"))
    hooks = tmp_path_factory.mktemp("site")
    (hooks / "sitecustomize.py").write_text(SITECUSTOMIZE)
    config = tmp_path_factory.mktemp("cfg") / "config.yaml"
    config.write_text(
        "models:\n"
        f"  - model_path: {folder}\n    model_id: {MODEL}\n    model_type: image-edit\n"
        "    engine: mflux\n    config_name: schnell\n"
    )
    server = start_server(
        "--config", str(config), env={"PYTHONPATH": str(hooks), "HF_HUB_OFFLINE": "1"}
    )
    yield server
    stop_server(server)


def decode(b64: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64)))


def generate(server: Server, **fields: Any) -> dict[str, Any]:
    body = {"model": MODEL, "prompt": "a red fox", "steps": 2, "seed": 7, "size": "64x64"}
    r = server.client.post("/v1/images/generations", json={**body, **fields}, timeout=120)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def test_a_handler_process_runs_mflux(flux_server: Server) -> None:
    [model] = [m for m in flux_server.client.get("/v1/admin/loaded-models").json()["data"]]
    assert model["engine"] == "mflux" and model["status"] == "running"
    assert model["pid"] != flux_server.process.pid
    body = generate(flux_server, size="96x64", output_format="webp")
    assert body["size"] == "96x64" and body["output_format"] == "webp"
    picture = decode(body["data"][0]["b64_json"])
    assert picture.format == "WEBP" and picture.size == (96, 64)


def test_same_seed_same_pixels_and_n_images_differ(flux_server: Server) -> None:
    first = [d["b64_json"] for d in generate(flux_server, n=2)["data"]]
    again = [d["b64_json"] for d in generate(flux_server, n=2)["data"]]
    assert first == again and first[0] != first[1]
    second = generate(flux_server, seed=8)["data"][0]["b64_json"]  # image i: seed + i
    assert np.array_equal(np.asarray(decode(second)), np.asarray(decode(first[1])))


def test_streaming_events_in_order(flux_server: Server) -> None:
    body = {"model": MODEL, "prompt": "a fox", "steps": 3, "size": "64x64", "stream": True}
    events: list[dict[str, Any]] = []
    request = {**body, "partial_images": 1, "seed": 2}
    with flux_server.client.stream("POST", "/v1/images/generations", json=request) as r:
        assert r.status_code == 200
        events = list(sse_events(r))
    kinds = [e["type"] for e in events]
    steps = [e["step"] for e in events if e["type"] == "image_generation.progress"]
    assert steps == [1, 2, 3]
    assert kinds.count("image_generation.partial_image") == 1
    assert kinds[-1] == "image_generation.completed"
    assert decode(events[-1]["b64_json"]).size == (64, 64)


def png(picture: Image.Image) -> bytes:
    out = io.BytesIO()
    picture.save(out, format="PNG")
    return out.getvalue()


def test_the_openai_sdk_generates_and_edits(flux_server: Server) -> None:
    client = openai.OpenAI(base_url=f"{flux_server.url}/v1", api_key="none", max_retries=0)
    made = client.images.generate(
        model=MODEL, prompt="a fox", size="64x64", extra_body={"steps": 2, "seed": 5}
    )
    assert made.data and made.data[0].b64_json
    assert decode(made.data[0].b64_json).size == (64, 64)
    source = Image.new("RGB", (64, 64), "blue")
    edits = [
        client.images.edit(
            model=MODEL,
            image=("in.png", png(source), "image/png"),
            prompt="a fox",
            size="64x64",
            extra_body={"steps": 4, "seed": 5, "strength": strength},
        )
        for strength in (0.3, 0.9)
    ]
    pictures = [np.asarray(decode(e.data[0].b64_json).convert("RGB")).astype(int) for e in edits]  # type: ignore[index,arg-type]
    assert all(p.shape == (64, 64, 3) for p in pictures)
    assert not np.array_equal(pictures[0], pictures[1])  # the strength reached mflux
    masked = flux_server.client.post(
        "/v1/images/edits",
        data={"model": MODEL, "prompt": "a fox"},
        files=[
            ("image", ("in.png", png(source), "image/png")),
            ("mask", ("m.png", png(Image.new("RGBA", (64, 64))), "image/png")),
        ],
    )
    assert masked.status_code == 400 and masked.json()["error"]["param"] == "mask"


def load(
    server: Server, model_id: str, config_name: str, folder: Path, kind: str = "image-edit"
) -> None:
    body = {
        "model_path": str(folder), "model_id": model_id, "model_type": kind,
        "engine": "mflux", "config_name": config_name,
    }  # fmt: skip
    r = server.client.post("/v1/admin/load-model", json=body, timeout=120)
    assert r.status_code == 201, r.text


def edit(server: Server, model: str, mask: Image.Image | None = None, **fields: Any) -> Any:
    files = [("image", ("in.png", png(Image.new("RGB", (64, 64), (10, 200, 30))), "image/png"))]
    if mask is not None:
        files.append(("mask", ("mask.png", png(mask), "image/png")))
    data = {"model": model, "prompt": "a fox", "steps": "2", "seed": "3", **fields}
    return server.client.post("/v1/images/edits", data=data, files=files, timeout=120)


def test_kontext_edits_the_image_it_is_given(flux_server: Server) -> None:
    load(flux_server, "tiny-kontext", "dev-kontext", FOLDERS["dev"])
    try:
        first, again = edit(flux_server, "tiny-kontext"), edit(flux_server, "tiny-kontext")
        assert first.status_code == 200, first.text
        assert first.json()["data"] == again.json()["data"]  # seeded
        assert decode(first.json()["data"][0]["b64_json"]).size == (64, 64)
        for fields, param in (({"strength": "0.5"}, "strength"), ({}, "image")):
            if param == "image":
                r = flux_server.client.post(
                    "/v1/images/generations",
                    json={"model": "tiny-kontext", "prompt": "a fox", "size": "64x64"},
                )
            else:
                r = edit(flux_server, "tiny-kontext", **fields)
            assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text
    finally:
        flux_server.client.delete("/v1/admin/unload-model/tiny-kontext")


def test_fill_inpaints_only_under_the_mask(flux_server: Server) -> None:
    load(flux_server, "tiny-fill", "dev-fill", FOLDERS["dev-fill"])
    try:
        mask = Image.new("RGBA", (64, 64), (0, 0, 0, 255))
        mask.paste((0, 0, 0, 0), (0, 0, 32, 64))  # transparent: the left half is edited
        r = edit(flux_server, "tiny-fill", mask)
        assert r.status_code == 200, r.text
        edited = np.asarray(decode(r.json()["data"][0]["b64_json"]).convert("RGB")).astype(int)
        original = np.asarray(Image.new("RGB", (64, 64), (10, 200, 30))).astype(int)
        assert np.array_equal(edited[:, 32:], original[:, 32:])
        assert np.abs(edited[:, :32] - original[:, :32]).mean() > 5
        no_mask = edit(flux_server, "tiny-fill")
        assert no_mask.status_code == 400 and no_mask.json()["error"]["param"] == "mask"
    finally:
        flux_server.client.delete("/v1/admin/unload-model/tiny-fill")


def test_z_image_turbo_generates_and_edits(flux_server: Server) -> None:
    load(flux_server, "tiny-zimage", "z-image-turbo", FOLDERS["z-image"])
    try:
        first, again = (generate(flux_server, model="tiny-zimage") for _ in "ab")
        assert first["data"] == again["data"]  # seeded
        assert decode(first["data"][0]["b64_json"]).size == (64, 64)
        other = generate(flux_server, model="tiny-zimage", seed=8)
        assert other["data"] != first["data"]
        edited = edit(flux_server, "tiny-zimage", strength="0.5")
        assert edited.status_code == 200, edited.text
        assert decode(edited.json()["data"][0]["b64_json"]).size == (64, 64)
        r = flux_server.client.post(
            "/v1/images/generations",
            json={"model": "tiny-zimage", "prompt": "a fox", "size": "64x64", "guidance_scale": 3},
        )
        assert r.status_code == 400 and r.json()["error"]["param"] == "guidance_scale"
    finally:
        flux_server.client.delete("/v1/admin/unload-model/tiny-zimage")


def test_flux2_klein_generates_and_edits_with_several_references(flux_server: Server) -> None:
    load(flux_server, "tiny-klein", "flux2-klein-4b", FOLDERS["flux2"], "image-generation")
    load(flux_server, "tiny-klein-edit", "flux2-klein-4b", FOLDERS["flux2"])
    try:
        made = generate(flux_server, model="tiny-klein")
        assert made["data"] == generate(flux_server, model="tiny-klein")["data"]
        assert decode(made["data"][0]["b64_json"]).size == (64, 64)
        noisy = Image.effect_noise((64, 64), 80).convert("RGB")
        green = Image.new("RGB", (64, 64), (10, 200, 30))
        answers = []
        for references in ([green], [green, noisy]):
            files = [
                ("image[]", (f"{i}.png", png(p), "image/png")) for i, p in enumerate(references)
            ]
            data = {"model": "tiny-klein-edit", "prompt": "a fox", "steps": "2", "seed": "3"}
            r = flux_server.client.post("/v1/images/edits", data=data, files=files, timeout=120)
            assert r.status_code == 200, r.text
            answers.append(np.asarray(decode(r.json()["data"][0]["b64_json"])).astype(int))
        assert answers[0].shape == (64, 64, 3)
        assert not np.array_equal(answers[0], answers[1])  # the second reference counts
        files = [("image[]", (f"{i}.png", png(green), "image/png")) for i in range(5)]
        data = {"model": "tiny-klein-edit", "prompt": "a fox"}
        five = flux_server.client.post("/v1/images/edits", data=data, files=files)
        assert five.status_code == 400 and five.json()["error"]["param"] == "image"
        assert "at most 4" in five.json()["error"]["message"]
        generation = flux_server.client.post(
            "/v1/images/generations",
            json={"model": "tiny-klein-edit", "prompt": "a fox", "size": "64x64"},
        )
        assert generation.status_code == 400 and generation.json()["error"]["param"] == "image"
        negative = flux_server.client.post(
            "/v1/images/generations",
            json={"model": "tiny-klein", "prompt": "a fox", "negative_prompt": "blur"},
        )
        assert negative.status_code == 400
        assert negative.json()["error"]["param"] == "negative_prompt"
    finally:
        for model_id in ("tiny-klein", "tiny-klein-edit"):
            flux_server.client.delete(f"/v1/admin/unload-model/{model_id}")


def test_a_client_that_leaves_stops_the_denoising(flux_server: Server) -> None:
    # 256x256 takes ~0.4 s a step here (and ~30 s to decode): 400 steps would run ~3 min.
    body = {"model": MODEL, "prompt": "a fox", "steps": 400, "size": "256x256", "stream": True}
    seconds = idle_after_leaving(flux_server, MODEL, body, step=2)
    assert seconds < 10, "the handler went on denoising after the client left"
    assert generate(flux_server)["data"]
