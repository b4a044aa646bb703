"""Convert a CTranslate2 Whisper model (faster-whisper's format) for mlx-whisper.

mlx-whisper loads a folder with ``config.json`` (the model dimensions) and
``weights.safetensors`` named like OpenAI's Whisper. CTranslate2 stores the
same tensors under its own names, with two differences: the q, k and v
projections of self-attention are fused in one ``linear_0`` (rows q, k, v;
k has no bias, stored as zeros), and cross-attention fuses k and v in
``linear_1``. Conv1d weights are (out, in, kernel) there and (out, kernel,
in) in MLX. The encoder's positional encodings are the fixed sinusoids
mlx-whisper computes itself, so they are not copied.

Tensors keep their stored dtype (float16 for faster-whisper's models); the
engine casts at load time. Conversions are cached like GGUF ones.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from catalog.files import is_ct2_whisper, is_mlx_whisper
from handlers.convert.ct2_reader import CT2FormatError, CT2Model, read_ct2

log = logging.getLogger(__name__)

# Bump when the output of a conversion changes: it is part of the cache key.
CONVERTER_VERSION = 1

Array = npt.NDArray[np.generic]


class ConversionError(ValueError):
    """The folder cannot be converted; the message says why."""


def _linear(model: CT2Model, src: str, dst: str, out: dict[str, Array]) -> None:
    out[f"{dst}.weight"] = model.get(f"{src}/weight")
    out[f"{dst}.bias"] = model.get(f"{src}/bias")


def _norm(model: CT2Model, src: str, dst: str, out: dict[str, Array]) -> None:
    out[f"{dst}.weight"] = model.get(f"{src}/gamma")
    out[f"{dst}.bias"] = model.get(f"{src}/beta")


def _split(
    model: CT2Model, src: str, dst: str, names: tuple[str, ...], out: dict[str, Array]
) -> None:
    """Split a fused projection into ``names`` (``key`` gets no bias)."""
    weight, bias = model.get(f"{src}/weight"), model.get(f"{src}/bias")
    parts = len(names)
    if weight.shape[0] % parts or bias.shape[0] != weight.shape[0]:
        raise ConversionError(f"{src}: cannot split {weight.shape} into {parts} projections")
    for name, w, b in zip(names, np.split(weight, parts), np.split(bias, parts), strict=True):
        out[f"{dst}.{name}.weight"] = w
        if name != "key":
            out[f"{dst}.{name}.bias"] = b


def _block(model: CT2Model, src: str, dst: str, cross: bool, out: dict[str, Array]) -> None:
    _split(model, f"{src}/self_attention/linear_0", f"{dst}.attn", ("query", "key", "value"), out)
    _linear(model, f"{src}/self_attention/linear_1", f"{dst}.attn.out", out)
    _norm(model, f"{src}/self_attention/layer_norm", f"{dst}.attn_ln", out)
    if cross:
        _linear(model, f"{src}/attention/linear_0", f"{dst}.cross_attn.query", out)
        _split(model, f"{src}/attention/linear_1", f"{dst}.cross_attn", ("key", "value"), out)
        _linear(model, f"{src}/attention/linear_2", f"{dst}.cross_attn.out", out)
        _norm(model, f"{src}/attention/layer_norm", f"{dst}.cross_attn_ln", out)
    _linear(model, f"{src}/ffn/linear_0", f"{dst}.mlp1", out)
    _linear(model, f"{src}/ffn/linear_1", f"{dst}.mlp2", out)
    _norm(model, f"{src}/ffn/layer_norm", f"{dst}.mlp_ln", out)


def _count_layers(model: CT2Model, prefix: str) -> int:
    n = 0
    while f"{prefix}/layer_{n}/ffn/linear_0/weight" in model.variables:
        n += 1
    if n == 0:
        raise ConversionError(f"the model has no {prefix} layers")
    return n


def convert_tensors(model: CT2Model) -> tuple[dict[str, Array], dict[str, Any]]:
    """(mlx-whisper weights, ModelDimensions as a dict) of a CT2 Whisper model."""
    if model.spec != "WhisperSpec":
        raise ConversionError(f"not a Whisper model (CTranslate2 spec {model.spec!r})")
    quantized = [name for name in model.variables if name.endswith("weight_scale")]
    if quantized:
        raise ConversionError(
            "int8/int16-quantized CTranslate2 models cannot be converted to MLX; "
            "use a float16 or float32 model (ct2-transformers-converter --quantization float16)"
        )
    out: dict[str, Array] = {}
    for conv in ("conv1", "conv2"):
        out[f"encoder.{conv}.weight"] = model.get(f"encoder/{conv}/weight").transpose(0, 2, 1)
        out[f"encoder.{conv}.bias"] = model.get(f"encoder/{conv}/bias")
    n_audio_layer = _count_layers(model, "encoder")
    n_text_layer = _count_layers(model, "decoder")
    for i in range(n_audio_layer):
        _block(model, f"encoder/layer_{i}", f"encoder.blocks.{i}", False, out)
    for i in range(n_text_layer):
        _block(model, f"decoder/layer_{i}", f"decoder.blocks.{i}", True, out)
    _norm(model, "encoder/layer_norm", "encoder.ln_post", out)
    _norm(model, "decoder/layer_norm", "decoder.ln", out)
    embedding = model.get("decoder/embeddings/weight")
    out["decoder.token_embedding.weight"] = embedding
    out["decoder.positional_embedding"] = model.get("decoder/position_encodings/encodings")
    conv1 = model.get("encoder/conv1/weight")
    dims = {
        "n_mels": int(conv1.shape[1]),
        "n_audio_ctx": int(model.get("encoder/position_encodings/encodings").shape[0]),
        "n_audio_state": int(conv1.shape[0]),
        "n_audio_head": model.scalar("encoder/num_heads"),
        "n_audio_layer": n_audio_layer,
        "n_vocab": int(embedding.shape[0]),
        "n_text_ctx": int(out["decoder.positional_embedding"].shape[0]),
        "n_text_state": int(embedding.shape[1]),
        "n_text_head": model.scalar("decoder/num_heads"),
        "n_text_layer": n_text_layer,
    }
    return out, dims


def convert_whisper(src: str | Path, out_dir: str | Path) -> Path:
    """Write the mlx-whisper folder ``out_dir`` for the CT2 folder ``src``.

    The folder appears atomically (written beside it, then renamed); an
    existing folder is left as it is (a concurrent conversion won).
    """
    import mlx.core as mx

    started = time.perf_counter()
    src, out_dir = Path(src), Path(out_dir)
    if not is_ct2_whisper(src):
        raise ConversionError(f"{src} is not a CTranslate2 Whisper folder (model.bin, config.json)")
    try:
        model = read_ct2(src / "model.bin")
        ct2_config = json.loads((src / "config.json").read_text())
    except CT2FormatError as exc:
        raise ConversionError(str(exc)) from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise ConversionError(f"cannot read {src}: {exc}") from exc
    weights, dims = convert_tensors(model)
    config = {"model_type": "whisper", **dims}
    extras = {
        "alignment_heads": ct2_config.get("alignment_heads"),
        "suppress_ids": ct2_config.get("suppress_ids"),
        "suppress_ids_begin": ct2_config.get("suppress_ids_begin"),
        "source": str(src.resolve()),
    }
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.with_name(f"{out_dir.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    tmp.mkdir()
    try:
        mx.save_safetensors(
            str(tmp / "weights.safetensors"),
            {name: mx.array(np.ascontiguousarray(w)) for name, w in weights.items()},
        )
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        (tmp / "bodega_whisper.json").write_text(json.dumps(extras, indent=2) + "\n")
        try:
            os.rename(tmp, out_dir)
        except OSError:
            if not is_mlx_whisper(out_dir):
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("converted %s -> %s in %.1f s", src, out_dir, time.perf_counter() - started)
    return out_dir


def cache_key(src: str | Path) -> str:
    """The cache folder name of one conversion: the model file's identity and version."""
    path = (Path(src) / "model.bin").resolve()
    stat = path.stat()
    ident = ["whisper", stat.st_size, stat.st_mtime_ns, str(path), CONVERTER_VERSION]
    return hashlib.sha256(json.dumps(ident).encode()).hexdigest()


def cached_conversion(src: str | Path, cache_root: str | Path) -> Path:
    """Convert once into ``cache_root/<key>/`` and reuse that folder afterwards."""
    target = Path(cache_root) / cache_key(src)
    if is_mlx_whisper(target):
        return target
    if target.exists():  # a folder we did not finish writing
        shutil.rmtree(target, ignore_errors=True)
    return convert_whisper(src, target)
