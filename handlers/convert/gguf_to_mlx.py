"""Convert a llama-architecture GGUF file into an MLX model folder.

The folder is what ``mlx_lm.load(folder)`` expects: ``config.json``,
``model.safetensors`` and a Hugging Face tokenizer (``tokenizer.json``,
``tokenizer_config.json``, ``special_tokens_map.json``) rebuilt from the
GGUF metadata.

``mlx.core.load`` reads the tensors: Q4_0, Q4_1 and Q8_0 come back as MLX
affine-quantized triples (``weight``, ``scales``, ``biases``, group size 32),
F16 and F32 as plain arrays. It reads other GGML types (Q4_K, BF16, ...)
silently as garbage float16 arrays, so this module parses the tensor table
itself and refuses them before it loads anything.

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
import re
import secrets
import shutil
import struct
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from handlers.convert.gguf import GGUFError, TensorInfo, read_header
from handlers.convert.gguf_tokenizer import TokenizerError, check_tokenizer, tokenizer_files

log = logging.getLogger(__name__)

# Bump when the output of a conversion changes: it is part of the cache key.
CONVERTER_VERSION = 1

DTYPES = ("float32", "float16", "bfloat16")

# GGML tensor types: the ones MLX reads, and names for the error message.
SUPPORTED_TYPES = {0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 8: "Q8_0"}
QUANTIZED_BITS = {2: 4, 3: 4, 8: 8}

# GGUF tensor names -> Hugging Face / mlx-lm llama names.
_GLOBAL_NAMES = {
    "token_embd": "model.embed_tokens",
    "output_norm": "model.norm",
    "output": "lm_head",
}
_BLOCK_NAMES = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
}
_BLOCK_RE = re.compile(r"blk\.(\d+)\.(\w+)\.(weight|bias)")

_SHARD_BYTES = 5 << 30


class ConversionError(ValueError):
    """The GGUF file cannot be converted; the message says why."""


# ---------------------------------------------------------------------------
# Planning: everything that can be refused is refused before any tensor loads.


@dataclass
class _Plan:
    meta: dict[str, Any]
    tensors: dict[str, TensorInfo]  # by GGUF name
    names: dict[str, str]  # GGUF tensor name -> HF parameter name
    config: dict[str, Any]
    n_heads: int
    n_kv_heads: int


def _hf_name(gguf_name: str) -> str | None:
    base, _, suffix = gguf_name.rpartition(".")
    if base in _GLOBAL_NAMES and suffix == "weight":
        return f"{_GLOBAL_NAMES[base]}.weight"
    m = _BLOCK_RE.fullmatch(gguf_name)
    if m and m.group(2) in _BLOCK_NAMES:
        return f"model.layers.{m.group(1)}.{_BLOCK_NAMES[m.group(2)]}.{m.group(3)}"
    return None


def _int(meta: dict[str, Any], key: str, default: int | None = None) -> int:
    value = meta.get(key, default)
    if value is None:
        raise ConversionError(f"the GGUF metadata lacks {key}")
    if isinstance(value, list):  # per-layer values (e.g. head_count_kv)
        if len(set(value)) != 1:
            raise ConversionError(f"{key} varies per layer ({value}): not supported")
        value = value[0]
    return int(value)


def _float32(x: float) -> float:
    """The shortest decimal that reads back as the same float32 (1e-05, not 9.99e-06)."""
    target = struct.pack("<f", x)
    for digits in range(1, 18):
        candidate = float(f"{x:.{digits}g}")
        if struct.pack("<f", candidate) == target:
            return candidate
    return float(x)


def _plan(path: Path) -> _Plan:
    try:
        meta, infos = read_header(path)
    except OSError as exc:
        raise ConversionError(f"cannot read {path}: {exc}") from exc
    except GGUFError as exc:
        raise ConversionError(str(exc)) from exc

    arch = meta.get("general.architecture")
    if arch != "llama":
        raise ConversionError(
            f"{path.name}: architecture {arch!r} is not supported; only 'llama' GGUF "
            "files convert to MLX (serve this one with the llama.cpp engine)"
        )

    unsupported = [t for t in infos if t.ggml_type not in SUPPORTED_TYPES]
    if unsupported:
        kinds = sorted({t.type_name for t in unsupported})
        raise ConversionError(
            f"{path.name}: tensor type(s) {', '.join(kinds)} not supported "
            f"(e.g. {unsupported[0].name!r} is {unsupported[0].type_name}); supported "
            f"tensor types: {', '.join(SUPPORTED_TYPES.values())}. Use a Q4_0, Q4_1, "
            "Q8_0, F16 or F32 GGUF, or serve this file with the llama.cpp engine"
        )

    names: dict[str, str] = {}
    for t in infos:
        if t.name == "rope_freqs.weight":
            raise ConversionError(
                f"{path.name}: per-dimension rope frequencies (Llama 3.1-style rope "
                "scaling, tensor 'rope_freqs.weight') are not supported"
            )
        hf = _hf_name(t.name)
        if hf is None:
            raise ConversionError(
                f"{path.name}: tensor {t.name!r} has no counterpart in mlx-lm's llama "
                "model (mixture-of-experts and other variants are not supported)"
            )
        names[t.name] = hf
    tensors = {t.name: t for t in infos}

    if "token_embd.weight" not in tensors:
        raise ConversionError(f"{path.name}: no token_embd.weight tensor")
    n_layers = _int(meta, "llama.block_count")
    hidden = _int(meta, "llama.embedding_length")
    n_heads = _int(meta, "llama.attention.head_count")
    n_kv_heads = _int(meta, "llama.attention.head_count_kv", n_heads)
    head_dim = _int(meta, "llama.attention.key_length", hidden // n_heads)
    if _int(meta, "llama.attention.value_length", head_dim) != head_dim:
        raise ConversionError(f"{path.name}: key and value head sizes differ: not supported")
    rope_dims = _int(meta, "llama.rope.dimension_count", head_dim)
    if rope_dims != head_dim:
        raise ConversionError(
            f"{path.name}: rope over {rope_dims} of {head_dim} head dimensions "
            "(partial rotary) is not supported by mlx-lm's llama"
        )
    expected = {f"blk.{i}.{part}.weight" for i in range(n_layers) for part in _BLOCK_NAMES}
    missing = sorted(expected - tensors.keys())
    if missing:
        raise ConversionError(f"{path.name}: missing tensors {', '.join(missing[:4])}")
    vocab_size = tensors["token_embd.weight"].shape[0]

    rope_scaling = None
    scaling_type = meta.get("llama.rope.scaling.type", "none")
    if scaling_type == "linear":
        factor = meta.get("llama.rope.scaling.factor")
        if factor is None:
            raise ConversionError(f"{path.name}: linear rope scaling without a factor")
        rope_scaling = {"type": "linear", "factor": _float32(factor)}
    elif scaling_type != "none":
        raise ConversionError(f"{path.name}: rope scaling {scaling_type!r} is not supported")

    config: dict[str, Any] = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_act": "silu",
        "hidden_size": hidden,
        "num_hidden_layers": n_layers,
        "intermediate_size": _int(meta, "llama.feed_forward_length"),
        "num_attention_heads": n_heads,
        "num_key_value_heads": n_kv_heads,
        "head_dim": head_dim,
        "rms_norm_eps": _float32(meta.get("llama.attention.layer_norm_rms_epsilon", 1e-5)),
        "rope_theta": _float32(meta.get("llama.rope.freq_base", 10000.0)),
        "rope_traditional": False,
        "rope_scaling": rope_scaling,
        "max_position_embeddings": _int(meta, "llama.context_length", 4096),
        "vocab_size": vocab_size,
        "tie_word_embeddings": "output.weight" not in tensors,
        "attention_bias": "blk.0.attn_q.bias" in tensors,
        "mlp_bias": "blk.0.ffn_up.bias" in tensors,
    }
    for key in ("bos", "eos", "padding"):
        value = meta.get(f"tokenizer.ggml.{key}_token_id")
        if value is not None:
            config["pad_token_id" if key == "padding" else f"{key}_token_id"] = int(value)
    try:
        check_tokenizer(path, meta, vocab_size)
    except TokenizerError as exc:
        raise ConversionError(str(exc)) from exc
    return _Plan(meta, tensors, names, config, n_heads, n_kv_heads)


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
    plan: _Plan, raw: dict[str, Any], dtype: str | None
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
    plan = _plan(gguf_path)

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
