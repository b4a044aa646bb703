"""A tiny randomly initialised Z-Image model for mflux, built on the fly.

mflux's ``ZImageInitializer._init_models`` always builds Z-Image at full size
(a 30-layer 3840-wide transformer with 30 heads and 2+2 refiner blocks, a
36-layer 2560-wide Qwen3 text encoder with 32/8 attention heads, a
128/256/512-channel VAE), so a tiny model takes two parts:

* ``build_tiny_zimage(dest)`` writes a folder in mflux's own saved layout (what
  ``mflux-save`` writes: ``transformer/``, ``text_encoder/``, ``vae/``
  safetensors carrying ``mflux_version`` metadata, plus a local byte-level BPE
  ``tokenizer/`` with a Qwen-style chat template), which
  ``ZImage(model_config=ModelConfig.from_name("z-image-turbo"),
  model_path=str(dest))`` (or ``z-image``) loads through mflux's own
  WeightLoader / WeightApplier / TokenizerLoader. Module parameter shapes are
  not checked by mlx's ``Module.update``, so the tiny arrays simply replace the
  (never evaluated, lazily initialised) full-size ones. The head size stays at
  128 in both the transformer and the text encoder, so both rotary tables are
  mflux's own.
* ``tiny_zimage_patches()`` (a context manager; ``_patches()`` lists them)
  fixes what the
  weights alone cannot: the attention modules keep their head counts as plain
  attributes set at construction (30 heads in the transformer, 32 query / 8
  key-value heads in the text encoder), and the block lists keep their 30 / 2 /
  36 entries, the surplus ones still lazy and full size. After mflux applies
  the weights, the patch drops the blocks the checkpoint did not fill and reads
  each head count off the loaded projection widths. For the real model it
  computes the same numbers, so it is harmless if left on. It must be active
  while the model is built, in the same process.

Honest plumbing, no claim of quality: the output is noise.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from tiny_parts import (
    after_weights,
    loaded_prefix,
    out_dim,
    patched,
    random_params,
    save_components,
    write_qwen_tokenizer,
)

# Head size of both attention stacks, as in Z-Image (the transformer's rope
# axes 32+48+48 and the text encoder's rotary table both cover 128 dims).
HEAD_DIM = 128
# Transformer: 1 head of 128.
HIDDEN = 128
FF = 256
T_MID = 64  # timestep MLP's middle width (1024); its 256-wide input/output stay
# Text encoder (Qwen3): 2 query heads, 1 key-value head, of 128.
TEXT_HIDDEN = 64
TEXT_HEADS = 2
TEXT_KV_HEADS = 1
TEXT_FF = 128
# VAE: every 128/256/512-channel layer at 64 (GroupNorm keeps its 32 groups).
VAE_CHANNELS = 64

LAYERS = 1  # of Z-Image's hard-coded 30
REFINER_LAYERS = 1  # of 2 (noise refiner and context refiner each)
TEXT_LAYERS = 2  # of 36; Z-Image reads the second-to-last hidden state


def _dim_maps(vocab: int) -> dict[str, dict[int, int]]:
    return {
        "transformer": {
            3840: HIDDEN,
            15360: 4 * HIDDEN,
            10240: FF,
            2560: TEXT_HIDDEN,
            1024: T_MID,
        },
        "text_encoder": {
            2560: TEXT_HIDDEN,
            4096: TEXT_HEADS * HEAD_DIM,
            1024: TEXT_KV_HEADS * HEAD_DIM,
            9728: TEXT_FF,
            151936: vocab,
        },
        "vae": {512: VAE_CHANNELS, 256: VAE_CHANNELS, 128: VAE_CHANNELS},
    }


def build_tiny_zimage(dest: Path) -> Path:
    """Write the tiny Z-Image folder into ``dest`` (created if needed) and
    return it. Both ``z-image-turbo`` and ``z-image`` load it (they share the
    architecture; ``z-image`` adds classifier-free guidance)."""
    from mflux.models.z_image.model.z_image_text_encoder.text_encoder import TextEncoder
    from mflux.models.z_image.model.z_image_transformer.transformer import ZImageTransformer
    from mflux.models.z_image.model.z_image_vae.vae import VAE

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    vocab = write_qwen_tokenizer(dest)
    dims = _dim_maps(vocab)

    # Full-size modules, never evaluated (mlx is lazy): only their parameter
    # names and shapes are read, then mapped to the tiny shapes. The block
    # counts are constructor arguments, so they are built short directly.
    modules = {
        "transformer": ZImageTransformer(n_layers=LAYERS, n_refiner_layers=REFINER_LAYERS),
        "text_encoder": TextEncoder(num_hidden_layers=TEXT_LAYERS),
        "vae": VAE(),
    }
    save_components(
        dest,
        {
            component: random_params(module, seed, dims[component])
            for seed, (component, module) in enumerate(modules.items())
        },
    )
    (dest / "tiny_zimage.json").write_text(
        json.dumps({"hidden": HIDDEN, "text_hidden": TEXT_HIDDEN, "vae_channels": VAE_CHANNELS})
        + "\n"
    )
    return dest


# --- the patches -------------------------------------------------------------


def _patches() -> list[tuple[Any, str, Any]]:
    from mflux.models.z_image.model.z_image_text_encoder.attention import Attention
    from mflux.models.z_image.model.z_image_transformer.attention import ZImageAttention
    from mflux.models.z_image.z_image_initializer import ZImageInitializer

    def _fit_attributes(model: Any) -> None:
        # The block lists are built at their full count; drop the ones the
        # checkpoint left at their (lazy, never evaluated) full size.
        transformer = model.transformer
        for attr in ("noise_refiner", "context_refiner", "layers"):
            blocks = getattr(transformer, attr)
            setattr(transformer, attr, loaded_prefix(blocks, lambda b: b.attention.to_q))
        encoder = model.text_encoder
        encoder.layers = loaded_prefix(encoder.layers, lambda layer: layer.self_attn.q_proj)
        for module in (transformer, encoder):
            for _, sub in module.named_modules():
                if isinstance(sub, ZImageAttention):
                    sub.dim = out_dim(sub.to_q)
                    sub.n_heads = sub.dim // sub.head_dim
                elif isinstance(sub, Attention):
                    sub.num_heads = out_dim(sub.q_proj) // sub.head_dim
                    sub.num_kv_heads = out_dim(sub.k_proj) // sub.head_dim
                    sub.num_kv_groups = sub.num_heads // sub.num_kv_heads
        first = transformer.layers[0].attention
        transformer.dim, transformer.n_heads = first.dim, first.n_heads

    return [after_weights(ZImageInitializer, _fit_attributes)]


def tiny_zimage_patches() -> contextlib.AbstractContextManager[None]:
    """The patches for the duration of a ``with`` block."""
    return patched(_patches())
