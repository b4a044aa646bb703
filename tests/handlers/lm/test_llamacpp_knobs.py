"""The llama.cpp load options reach xllamacpp's params."""

from __future__ import annotations

import pytest

from catalog.options import LoadOptions
from handlers.lm.llamacpp_knobs import load_mode_name, set_knobs

xllamacpp = pytest.importorskip("xllamacpp")


def test_knobs_are_set_on_the_params() -> None:
    params = xllamacpp.CommonParams()
    spec = LoadOptions(
        model_path="m.gguf", n_batch=128, n_gpu_layers=0, use_mmap=False, use_mlock=True
    )
    set_knobs(params, spec)
    assert params.n_batch == 128 and params.n_ubatch == 128
    assert params.n_gpu_layers == 0
    assert params.load_mode == xllamacpp.llama_load_mode.LLAMA_LOAD_MODE_MLOCK


def test_unset_knobs_keep_llama_cpp_defaults() -> None:
    params = xllamacpp.CommonParams()
    before = (params.n_batch, params.n_ubatch, params.n_gpu_layers, params.load_mode)
    set_knobs(params, LoadOptions(model_path="m.gguf"))
    assert (params.n_batch, params.n_ubatch, params.n_gpu_layers, params.load_mode) == before


@pytest.mark.parametrize(
    ("mmap", "mlock", "mode"),
    [
        (None, None, "LLAMA_LOAD_MODE_AUTO"),
        (True, None, "LLAMA_LOAD_MODE_MMAP"),
        (None, True, "LLAMA_LOAD_MODE_MMAP_MLOCK"),
        (False, None, "LLAMA_LOAD_MODE_NONE"),
        (False, True, "LLAMA_LOAD_MODE_MLOCK"),
        (True, False, "LLAMA_LOAD_MODE_MMAP"),
    ],
)
def test_load_mode(mmap: bool | None, mlock: bool | None, mode: str) -> None:
    assert load_mode_name(mmap, mlock) == mode
