"""What the tiny mflux models share (tiny_mflux.py, tiny_zimage.py,
tiny_flux2.py): random weights under a module's parameter names, a Qwen-style
byte-level tokenizer, sizes read back off loaded weights, and patches applied
for a ``with`` block."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

Patch = tuple[Any, str, Any]

QWEN_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]
# Qwen3's template, reduced to what mflux's tokenizer calls use (user message,
# generation prompt, enable_thinking).
QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
    "{% if enable_thinking is defined and enable_thinking is false %}"
    "{{ '<think>\\n\\n</think>\\n\\n' }}{% endif %}{% endif %}"
)


def write_qwen_tokenizer(dest: Path) -> int:
    """A byte-level BPE over the 256 byte symbols and no merges (as Qwen's,
    minus its 151k learned pieces) with Qwen's special tokens and template,
    saved in ``dest / "tokenizer"``; its vocabulary size."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    byte_symbols = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {s: i for i, s in enumerate(byte_symbols)}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens(QWEN_SPECIAL)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        padding_side="right",
    )
    tokenizer.chat_template = QWEN_CHAT_TEMPLATE
    tokenizer.save_pretrained(str(dest / "tokenizer"))
    return len(tokenizer)


def random_params(
    module: Any,
    seed: int,
    dims: dict[int, int] | None = None,
    norm_types: tuple[type, ...] = (),
) -> dict[str, Any]:
    """bfloat16 arrays under ``module``'s parameter names, each dimension
    mapped through ``dims``: norm scales at one and biases at zero (the random
    stream stays finite), VAE latent statistics the identity, the rest normal
    with 1/sqrt(fan-in). Computed rotary tables are left out."""
    import mlx.core as mx
    from mlx import nn
    from mlx.utils import tree_flatten

    # Norms by type or by name: Z-Image's caption norm is ``cap_embedder.0``.
    types = (nn.RMSNorm, nn.LayerNorm, nn.GroupNorm, *norm_types)
    norms = {prefix for prefix, sub in module.named_modules() if isinstance(sub, types)}
    mx.random.seed(seed)
    out: dict[str, Any] = {}
    for name, value in tree_flatten(module.parameters()):
        if name.endswith("inv_freq"):
            continue
        shape = tuple((dims or {}).get(d, d) for d in value.shape)
        owner = name.rsplit(".", 1)[0] if "." in name else ""
        if name.endswith(("running_var", "running_mean")):
            fill = 1.0 if name.endswith("running_var") else 0.0
            out[name] = mx.full(shape, fill, dtype=mx.float32)
            continue
        if name.endswith("bias") or owner in norms or "norm" in owner.rsplit(".", 1)[-1]:
            fill = 1.0 if name.endswith("weight") else 0.0
            arr = mx.full(shape, fill, dtype=mx.float32)
        else:
            fan_in = 1
            for d in shape[1:]:
                fan_in *= d
            arr = mx.random.normal(shape) * (fan_in**-0.5)
        out[name] = arr.astype(mx.bfloat16)
    return out


def mflux_version() -> str:
    """The installed mflux's version (the metadata its saved folders carry)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mflux")
    except PackageNotFoundError:
        return "0.24.0"


def save_components(dest: Path, params: dict[str, dict[str, Any]]) -> None:
    """Each component's arrays as ``dest / folder / 0.safetensors``, with the
    metadata mflux's own saved folders carry."""
    import mlx.core as mx

    metadata = {"quantization_level": "None", "mflux_version": mflux_version()}
    for folder, arrays in params.items():
        (dest / folder).mkdir(exist_ok=True)
        mx.save_safetensors(str(dest / folder / "0.safetensors"), arrays, metadata=metadata)


def after_weights(initializer: Any, fit: Callable[[Any], None]) -> Patch:
    """The patch that runs ``fit(model)`` once ``initializer`` has applied the
    checkpoint's weights (to read the tiny sizes back off them)."""
    original = initializer._apply_weights

    def apply_weights(model: Any, weights: Any, quantize: int | None) -> None:
        original(model, weights, quantize)
        fit(model)

    return (initializer, "_apply_weights", staticmethod(apply_weights))


def loaded_prefix(blocks: list[Any], probe: Callable[[Any], Any]) -> list[Any]:
    """The leading blocks the checkpoint filled: the rest keep their (lazy,
    never evaluated) full-size weights, so ``probe``'s shape tells them apart."""
    width = probe(blocks[0]).weight.shape
    count = 0
    while count < len(blocks) and probe(blocks[count]).weight.shape == width:
        count += 1
    return blocks[:count]


def out_dim(linear: Any) -> int:
    """A Linear's output width (a quantized one keeps its output rows)."""
    return int(linear.weight.shape[0])


@contextlib.contextmanager
def patched(patches: list[Patch]) -> Iterator[None]:
    """``patches`` (owner, attribute, value) applied for a ``with`` block."""
    saved = [(owner, name, owner.__dict__[name]) for owner, name, _ in patches]
    try:
        for owner, name, value in patches:
            setattr(owner, name, value)
        yield
    finally:
        for owner, name, value in reversed(saved):
            setattr(owner, name, value)
