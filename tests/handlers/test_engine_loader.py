"""The engine loader: what a handler process imports before its model loads."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers import ROOT

MLX_HANDLER_START = """
import sys
from bodega.settings import embedded_lm_path
from catalog.options import LoadOptions
from handlers.engine_loader import import_engine, open_engine
from ipc.messages import Generate
spec = LoadOptions(model_path=embedded_lm_path(), engine="mlx", model_type="lm", context_length=256)
import_engine(spec)
assert "mlx_lm" in sys.modules
engine = open_engine(spec)
text = []
finished = engine.generate(
    Generate(req_id=1, prompt="The capital of France is", max_tokens=4),
    lambda t, n=1, *a, **k: text.append(t),
    lambda: False,
)
print(finished.usage.completion_tokens, sys.modules.get("torch") is None, flush=True)
import os
os._exit(0)  # as a handler leaves: never tear down a running engine thread
"""


def test_an_mlx_handler_never_imports_torch_and_still_generates() -> None:
    pytest.importorskip("mlx_lm", reason="pip install '.[mlx]'")
    out = subprocess.run(
        [sys.executable, "-c", MLX_HANDLER_START],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-2:] == ["4", "True"]
