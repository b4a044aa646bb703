"""Convert a llama-architecture GGUF file into an MLX model folder.

The folder is what ``mlx_lm.load(folder)`` expects: ``config.json``,
``model.safetensors`` and a Hugging Face tokenizer (``tokenizer.json``,
``tokenizer_config.json``, ``special_tokens_map.json``) rebuilt from the
GGUF metadata.

``mlx.core.load`` reads the tensors: Q4_0, Q4_1 and Q8_0 come back as MLX
affine-quantized triples (``weight``, ``scales``, ``biases``, group size 32),
F16 and F32 as plain arrays. It reads other GGML types (Q4_K, BF16, ...)
silently as garbage float16 arrays, so ``gguf_plan`` parses the tensor table
itself and refuses them before anything loads.

llama.cpp's converter interleaves the rows of the q and k projections (its
rope rotates adjacent pairs, Hugging Face's rotates halves); the conversion
undoes that permutation on every array of those tensors, quantized or not.

By default quantized tensors stay quantized, with their own bits recorded
per layer in the config (``dtype=None``). ``dtype="float32"`` (or float16,
bfloat16) dequantizes everything: on x86 CPUs MLX runs quantized matmuls as
a scalar loop, and float32 with a good BLAS decodes several times faster.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any

from handlers.convert.gguf_plan import QUANTIZED_BITS, ConversionError, Plan, plan_conversion
from handlers.convert.gguf_tokenizer import tokenizer_files

log = logging.getLogger(__name__)

# Bump when the output of a conversion changes: it is part of the cache key.
CONVERTER_VERSION = 1

DTYPES = ("float32", "float16", "bfloat16")

_SHARD_BYTES = 5 << 30


# ---------------------------------------------------------------------------
# Weights.


def _unpermute(w: Any, n_heads: int) -> Any:
    """Undo llama.cpp's interleaving of q/k rows (the output dimension)."""
    rows = w.shape[0]
    if rows % (2 * n_heads):
        raise ConversionError(f"cannot split {rows} rows into {n_heads} rope heads")
    rest = w.shape[1:]
    return w.reshape(n_heads, rows // n_heads // 2, 2, *rest).swapaxes(1, 2).reshape(w.shape)


def _convert_weights(
    plan: Plan, raw: dict[str, Any], dtype: str | None
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """HF-named arrays, and mlx-lm's ``quantization`` config when any stay quantized."""
    import mlx.core as mx

    target = getattr(mx, dtype) if dtype else None
    out: dict[str, Any] = {}
    layer_quant: dict[str, dict[str, Any] | bool] = {}
    for gguf_name, info in plan.tensors.items():
        hf = plan.names[gguf_name]
        heads = None
        if ".attn_q." in gguf_name:
            heads = plan.n_heads
        elif ".attn_k." in gguf_name:
            heads = plan.n_kv_heads
        prefix = gguf_name.removesuffix(".weight")
        hf_prefix = hf.removesuffix(".weight")
        bits = QUANTIZED_BITS.get(info.ggml_type)
        if bits is None:
            w = raw[gguf_name]
            if tuple(w.shape) != info.shape:
                raise ConversionError(
                    f"{gguf_name}: MLX read shape {w.shape}, expected {info.shape}"
                )
            if heads:
                w = _unpermute(w, heads)
            out[hf] = w.astype(target) if target is not None else w
            if len(info.shape) == 2:
                layer_quant[hf_prefix] = False
            continue

        w, scales, biases = raw[gguf_name], raw[f"{prefix}.scales"], raw[f"{prefix}.biases"]
        rows, in_features = info.shape
        group_size = in_features // scales.shape[-1]
        packed_bits = w.shape[-1] * 32 // in_features
        if (group_size, packed_bits) != (32, bits) or w.shape[0] != rows:
            raise ConversionError(
                f"{gguf_name}: unexpected MLX layout {w.shape}/{scales.shape} for "
                f"{info.type_name} {info.shape}"
            )
        if heads:
            w, scales, biases = (_unpermute(a, heads) for a in (w, scales, biases))
        if target is not None:
            full = mx.dequantize(
                w,
                scales.astype(mx.float32),
                biases.astype(mx.float32),
                group_size=group_size,
                bits=bits,
            )
            out[hf] = full.astype(target)
        else:
            out[hf] = w
            out[f"{hf_prefix}.scales"] = scales
            out[f"{hf_prefix}.biases"] = biases
            layer_quant[hf_prefix] = {"group_size": group_size, "bits": bits, "mode": "affine"}

    quantized = [q for q in layer_quant.values() if isinstance(q, dict)]
    if not quantized:
        return out, None
    # The most common setting is the default; every other layer is named.
    default_key, _ = Counter((q["group_size"], q["bits"]) for q in quantized).most_common(1)[0]
    quantization: dict[str, Any] = {
        "group_size": default_key[0],
        "bits": default_key[1],
        "mode": "affine",
    }
    for path, q in sorted(layer_quant.items()):
        if q is False or (isinstance(q, dict) and (q["group_size"], q["bits"]) != default_key):
            quantization[path] = q
    return out, quantization


def _save_weights(folder: Path, weights: dict[str, Any]) -> None:
    import mlx.core as mx

    shards: list[dict[str, Any]] = [{}]
    size = 0
    for name in sorted(weights):
        nbytes = weights[name].nbytes
        if shards[-1] and size + nbytes > _SHARD_BYTES:
            shards.append({})
            size = 0
        shards[-1][name] = weights[name]
        size += nbytes
    if len(shards) == 1:
        mx.save_safetensors(
            str(folder / "model.safetensors"), shards[0], metadata={"format": "mlx"}
        )
        return
    weight_map = {}
    for i, shard in enumerate(shards, 1):
        file = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        mx.save_safetensors(str(folder / file), shard, metadata={"format": "mlx"})
        weight_map.update(dict.fromkeys(shard, file))
    index = {
        "metadata": {"total_size": sum(w.nbytes for w in weights.values())},
        "weight_map": weight_map,
    }
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))


# ---------------------------------------------------------------------------
# Public API.


def _publish(tmp: Path, out_dir: Path, overwrite: bool) -> None:
    if out_dir.is_dir() and not any(out_dir.iterdir()):
        out_dir.rmdir()
    if out_dir.exists():
        if not overwrite:
            raise FileExistsError(f"{out_dir} exists and is not empty")
        old = out_dir.with_name(f"{out_dir.name}.old-{os.getpid()}-{secrets.token_hex(4)}")
        os.rename(out_dir, old)
        os.rename(tmp, out_dir)
        if old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink()
        return
    try:
        os.rename(tmp, out_dir)
    except OSError as exc:  # someone else published it meanwhile
        raise FileExistsError(f"{out_dir} exists and is not empty") from exc


def convert_gguf(
    gguf_path: str | Path,
    out_dir: str | Path,
    *,
    dtype: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Convert ``gguf_path`` into the MLX model folder ``out_dir`` and return it.

    The folder appears atomically (written beside it, then renamed). An existing
    non-empty ``out_dir`` raises ``FileExistsError`` unless ``overwrite``.
    ``dtype`` (float32, float16, bfloat16) dequantizes every tensor to that type;
    ``None`` keeps the GGUF's quantization, bits per layer.
    Raises ``ConversionError`` for files this converter cannot handle.
    """
    import mlx.core as mx

    started = time.perf_counter()
    gguf_path, out_dir = Path(gguf_path), Path(out_dir)
    if dtype is not None and dtype not in DTYPES:
        raise ConversionError(f"dtype must be one of {', '.join(DTYPES)} or None, not {dtype!r}")
    if out_dir.exists() and not overwrite and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise FileExistsError(f"{out_dir} exists and is not empty")
    plan = plan_conversion(gguf_path)

    try:
        raw = mx.load(str(gguf_path))
    except Exception as exc:  # MLX raises plain RuntimeError/ValueError
        raise ConversionError(f"MLX could not read the tensors of {gguf_path}: {exc}") from exc
    assert isinstance(raw, dict)
    weights, quantization = _convert_weights(plan, raw, dtype)
    del raw
    config = dict(plan.config)
    if quantization is not None:
        config["quantization"] = quantization
        config["quantization_config"] = quantization
    float_types = {str(w.dtype).rsplit(".", 1)[-1] for w in weights.values()} & set(DTYPES)
    config["torch_dtype"] = dtype or ("float16" if "float16" in float_types else "float32")

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.with_name(f"{out_dir.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    tmp.mkdir()
    try:
        _save_weights(tmp, weights)
        del weights
        files = {"config.json": config, **tokenizer_files(plan.meta)}
        for name, content in files.items():
            text = json.dumps(content, indent=2, ensure_ascii=False)
            (tmp / name).write_text(text + "\n", encoding="utf-8")
        _publish(tmp, out_dir, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info(
        "converted %s -> %s (%s) in %.1f s",
        gguf_path,
        out_dir,
        dtype or "quantized",
        time.perf_counter() - started,
    )
    return out_dir


def cache_key(gguf_path: str | Path, dtype: str | None = None) -> str:
    """The cache folder name of one conversion: the file's identity, dtype and version."""
    path = Path(gguf_path).resolve()
    stat = path.stat()
    ident = [stat.st_size, stat.st_mtime_ns, str(path), dtype, CONVERTER_VERSION]
    return hashlib.sha256(json.dumps(ident).encode()).hexdigest()


def cached_conversion(
    gguf_path: str | Path, cache_root: str | Path, dtype: str | None = None
) -> Path:
    """Convert once into ``cache_root/<key>/`` and reuse that folder afterwards."""
    target = Path(cache_root) / cache_key(gguf_path, dtype)
    if (target / "config.json").is_file():
        return target
    try:
        # A folder without its config was not written by us: replace it.
        return convert_gguf(gguf_path, target, dtype=dtype, overwrite=target.exists())
    except FileExistsError:
        if (target / "config.json").is_file():  # a concurrent conversion won
            return target
        raise
