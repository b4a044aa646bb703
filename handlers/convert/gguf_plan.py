"""Plan the conversion of a llama-architecture GGUF file: what
``gguf_to_mlx`` will write, decided from the header alone.

Everything that can be refused (another architecture, a tensor type MLX
misreads, per-layer head counts, a tokenizer that cannot be rebuilt) is
refused here, before any tensor loads. The plan names every tensor's Hugging
Face / mlx-lm parameter and holds the model's ``config.json``.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from handlers.convert.gguf import GGUFError, TensorInfo, read_header
from handlers.convert.gguf_tokenizer import TokenizerError, check_tokenizer

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


class ConversionError(ValueError):
    """The GGUF file cannot be converted; the message says why."""


# ---------------------------------------------------------------------------
# Planning: everything that can be refused is refused before any tensor loads.


@dataclass
class Plan:
    """What a conversion writes: tensors, their names, the config."""

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


def plan_conversion(path: Path) -> Plan:
    """The plan for ``path``; ``ConversionError`` saying why when there is none."""
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
    return Plan(meta, tensors, names, config, n_heads, n_kv_heads)
