"""The mflux engine in process on a tiny FLUX.1 (tiny_mflux.py): mflux is
installed without its dependencies on our MLX, and its own loader, tokenizers,
denoising loop and VAE run through the engine; the tiny model needs patches
for the dimensions FLUX.1 hard-codes, which must be active in the process
that runs it; tests/e2e/test_mflux_server.py runs it through a handler."""

from __future__ import annotations

import importlib.util
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from catalog.options import LoadOptions
from handlers.engine_protocol import EngineError, LoadError
from ipc import shm
from ipc.image_messages import GenerateImage, ImageProgress, ImageResult, ImagesDone

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(
        importlib.util.find_spec("mflux") is None,
        reason="mflux is not installed: pip install --no-deps mflux==0.24.0",
    ),
]


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from tiny_mflux import build_tiny_mflux, tiny_mflux_patches

    from handlers.images.mflux_engine import MfluxEngine

    folder = build_tiny_mflux(tmp_path_factory.mktemp("tiny-flux"))
    with tiny_mflux_patches():
        engine = MfluxEngine(LoadOptions(model_path=str(folder), model_type="image-generation"))
        yield engine
        engine.close()


def run(engine: Any, stop_at: int | None = None, **fields: Any) -> tuple[list[Any], Any]:
    frames: list[Any] = []
    request = GenerateImage(
        **{"req_id": 1, "prompt": "a fox", "width": 64, "height": 64, "steps": 3, **fields}
    )

    def should_stop() -> bool:
        steps = [f for f in frames if isinstance(f, ImageProgress)]
        return stop_at is not None and len(steps) >= stop_at

    done = engine.handle(request, frames.append, should_stop)
    return frames, done


def picture(frame: ImageResult) -> Image.Image:
    return Image.open(io.BytesIO(shm.read(frame.image)))


def test_mflux_runs_on_our_mlx() -> None:
    from importlib.metadata import version

    import mlx.core as mx

    assert version("mflux") == "0.24.0"
    assert mx.__version__.startswith("0.32")


def test_generates_the_size_asked_with_progress(engine: Any) -> None:
    frames, done = run(engine, seed=3, n=2)
    assert isinstance(done, ImagesDone) and done.n == 2 and done.prompt_tokens > 0
    steps = [f.step for f in frames if isinstance(f, ImageProgress)]
    assert steps == [1, 2, 3, 1, 2, 3]
    results = [f for f in frames if isinstance(f, ImageResult)]
    assert [r.seed for r in results] == [3, 4]
    images = [picture(r) for r in results]
    assert all(i.size == (64, 64) for i in images)
    assert images[0].tobytes() != images[1].tobytes()
    again, _ = run(engine, seed=3)
    first = next(f for f in again if isinstance(f, ImageResult))
    assert picture(first).tobytes() == images[0].tobytes()


def test_stops_between_steps(engine: Any) -> None:
    frames, done = run(engine, stop_at=1, seed=1, steps=None, steps_share=1.0)
    assert done.n == 0
    assert [f.step for f in frames if isinstance(f, ImageProgress)] == [1]


def test_previews_and_refusals(engine: Any) -> None:
    frames, _ = run(engine, seed=2, partial_images=1)
    previews = [f for f in frames if isinstance(f, ImageProgress) and f.preview is not None]
    assert len(previews) == 1
    assert Image.open(io.BytesIO(shm.read(previews[0].preview))).size == (64, 64)
    with pytest.raises(EngineError) as bad:
        run(engine, seed=2, width=72, height=64)
    assert bad.value.param == "size"
    with pytest.raises(EngineError) as long_prompt:
        engine.handle(GenerateImage(req_id=1, prompt="fox " * 400), lambda f: None, lambda: False)
    assert long_prompt.value.param == "prompt"


def test_unknown_config_name_is_a_load_error(tmp_path: Path) -> None:
    from handlers.images.mflux_engine import MfluxEngine

    with pytest.raises(LoadError, match="config_name"):
        MfluxEngine(
            LoadOptions(
                model_path=str(tmp_path), model_type="image-generation", config_name="nonsense"
            )
        )
