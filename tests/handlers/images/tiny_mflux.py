"""A tiny randomly initialised FLUX.1 model for mflux, built on the fly.

mflux's FLUX.1 classes hard-code FLUX's dimensions (3072 hidden, 24x128
attention heads, a 24-block 4096-wide T5, a 12-layer 768-wide CLIP, a
128/256/512-channel VAE), so a tiny model takes two parts:

* ``build_tiny_mflux(dest)`` writes a folder in mflux's own saved layout
  (what ``mflux-save`` writes: ``transformer/``, ``vae/``, ``text_encoder/``,
  ``text_encoder_2/`` safetensors carrying ``mflux_version`` metadata, plus
  local ``tokenizer/`` (CLIP BPE) and ``tokenizer_2/`` (T5 Unigram)), which
  ``Flux1(model_config=ModelConfig.schnell(), model_path=str(dest))`` loads
  through mflux's own WeightLoader / WeightApplier / TokenizerLoader. Module
  parameter shapes are not checked by mlx's ``Module.update``, so the tiny
  arrays simply replace the (never evaluated, lazily initialised) full-size
  ones.
* ``tiny_mflux_patches()`` (a context manager; ``_patches()`` lists them)
  replaces the few places where a FLUX dimension
  is a literal in the forward pass with versions that read it off the weights.
  For the real model they compute the same numbers, so they are harmless if
  left on. They must be active while the model is built and run, in the same
  process.

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
)

# Transformer: 1 head of 128 (FLUX's rope covers 16+56+56 = 128 dims per head).
HIDDEN = 128
FF = 256
# T5: 64 heads (the relative attention bias is 32 buckets x 64 heads) of 1 dim.
T5_HIDDEN = 64
T5_FF = 128
# CLIP: 12 heads of 16.
CLIP_HIDDEN = 192
CLIP_FF = 256
# VAE: every 128/256/512-channel layer at 64 (GroupNorm keeps its 32 groups).
VAE_CHANNELS = 64

JOINT_BLOCKS = 1
SINGLE_BLOCKS = 1
T5_BLOCKS = 2  # of FLUX's hard-coded 24
CLIP_LAYERS = 2  # of FLUX's hard-coded 12

_CHARS = [chr(c) for c in range(ord("!"), ord("~") + 1)]


def _dim_maps(clip_vocab: int, t5_vocab: int) -> dict[str, dict[int, int]]:
    return {
        "transformer": {
            3072: HIDDEN,
            18432: 6 * HIDDEN,
            12288: FF,
            9216: 3 * HIDDEN,
            6144: 2 * HIDDEN,
            15360: HIDDEN + FF,
            4096: T5_HIDDEN,
            768: CLIP_HIDDEN,
        },
        "t5_encoder": {4096: T5_HIDDEN, 10240: T5_FF, 32128: t5_vocab},
        "clip_encoder": {768: CLIP_HIDDEN, 3072: CLIP_FF, 49408: clip_vocab},
        "vae": {512: VAE_CHANNELS, 256: VAE_CHANNELS, 128: VAE_CHANNELS},
    }


def _write_tokenizers(dest: Path) -> tuple[int, int]:
    from transformers import CLIPTokenizer, T5Tokenizer

    # CLIP: characters alone and word-final; the end token has the highest id,
    # as in CLIP (the pooled output is read at argmax(ids)).
    pieces = _CHARS + [c + "</w>" for c in _CHARS]
    vocab = {p: i for i, p in enumerate(pieces)}
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    clip = CLIPTokenizer(vocab=vocab, merges=[])
    clip.save_pretrained(str(dest / "tokenizer"))

    # T5: <pad>=0, </s>=1, <unk>=2, then word-initial and inner characters.
    t5_vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    t5_vocab += [("\u2581" + c, -3.0) for c in _CHARS] + [(c, -4.0) for c in _CHARS]
    t5 = T5Tokenizer(vocab=t5_vocab, extra_ids=0)
    t5.save_pretrained(str(dest / "tokenizer_2"))
    return len(clip), len(t5)


def build_tiny_mflux(dest: Path, config: str = "dev") -> Path:
    """Write the tiny FLUX.1 folder into ``dest`` (created if needed) and return
    it. ``config`` is the mflux config whose transformer it copies: ``dev``
    (schnell, dev, krea-dev and dev-kontext load it) or ``dev-fill`` (its
    input takes the masked image's latents and the mask beside the noise)."""
    from mflux.models.common.config.model_config import ModelConfig
    from mflux.models.flux.model.flux_text_encoder.clip_encoder.clip_encoder import CLIPEncoder
    from mflux.models.flux.model.flux_text_encoder.t5_encoder.t5_encoder import T5Encoder
    from mflux.models.flux.model.flux_transformer.transformer import Transformer
    from mflux.models.flux.model.flux_vae.vae import VAE

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    clip_vocab, t5_vocab = _write_tokenizers(dest)
    dims = _dim_maps(clip_vocab, t5_vocab)

    # Full-size modules, never evaluated (mlx is lazy): only their parameter
    # names and shapes are read, then mapped to the tiny shapes. The dev config
    # carries the guidance embedder too; schnell simply leaves it unused.
    modules = {
        ("transformer", "transformer"): Transformer(
            model_config=ModelConfig.from_name(config),
            num_transformer_blocks=JOINT_BLOCKS,
            num_single_transformer_blocks=SINGLE_BLOCKS,
        ),
        ("vae", "vae"): VAE(),
        ("t5_encoder", "text_encoder_2"): T5Encoder(),
        ("clip_encoder", "text_encoder"): CLIPEncoder(),
    }
    t5 = modules[("t5_encoder", "text_encoder_2")]
    t5.t5_blocks = t5.t5_blocks[:T5_BLOCKS]
    clip = modules[("clip_encoder", "text_encoder")]
    clip.text_model.encoder.layers = clip.text_model.encoder.layers[:CLIP_LAYERS]
    save_components(
        dest,
        {
            subdir: random_params(module, seed, dims[component])
            for seed, ((component, subdir), module) in enumerate(modules.items())
        },
    )
    (dest / "tiny_mflux.json").write_text(
        json.dumps({"hidden": HIDDEN, "t5_hidden": T5_HIDDEN, "clip_hidden": CLIP_HIDDEN}) + "\n"
    )
    return dest


# --- the patches -------------------------------------------------------------


def _patches() -> list[tuple[Any, str, Any]]:
    import mlx.core as mx
    from mflux.models.flux.flux_initializer import FluxInitializer
    from mflux.models.flux.model.flux_text_encoder.clip_encoder.clip_sdpa_attention import (
        CLIPSdpaAttention,
    )
    from mflux.models.flux.model.flux_text_encoder.t5_encoder.t5_self_attention import (
        T5SelfAttention,
    )
    from mflux.models.flux.model.flux_transformer.ada_layer_norm_continuous import (
        AdaLayerNormContinuous,
    )
    from mflux.models.flux.model.flux_transformer.ada_layer_norm_zero import AdaLayerNormZero
    from mflux.models.flux.model.flux_transformer.ada_layer_norm_zero_single import (
        AdaLayerNormZeroSingle,
    )
    from mflux.models.flux.model.flux_transformer.joint_attention import JointAttention
    from mflux.models.flux.model.flux_transformer.single_block_attention import SingleBlockAttention

    # T5: 64 heads hard-coded in shape()/un_shape(); the head size follows the width.
    def t5_shape(states):
        return mx.transpose(mx.reshape(states, (1, -1, 64, states.shape[-1] // 64)), (0, 2, 1, 3))

    def t5_un_shape(states):
        return mx.reshape(
            mx.transpose(states, (0, 2, 1, 3)), (1, -1, states.shape[1] * states.shape[3])
        )

    # AdaLayerNormZero slices its modulation in chunks of the literal 18432 // 6.
    original_zero_call = AdaLayerNormZero.__call__

    def ada_zero_call(self, *args, **kwargs):
        chunk = self.linear.weight.shape[0] // 6
        if chunk == 3072:
            return original_zero_call(self, *args, **kwargs)
        return _ada_zero_small(self, chunk, *args, **kwargs)

    def _fit_attributes(model) -> None:
        # T5 and CLIP build a fixed number of blocks; drop the ones the checkpoint
        # left at their (lazy, never evaluated) full size.
        t5 = model.t5_text_encoder
        t5.t5_blocks = loaded_prefix(t5.t5_blocks, lambda b: b.attention.SelfAttention.q)
        encoder = model.clip_text_encoder.text_model.encoder
        encoder.layers = loaded_prefix(encoder.layers, lambda layer: layer.self_attn.q_proj)
        for _, module in model.named_modules():
            if isinstance(module, (JointAttention, SingleBlockAttention)):
                module.num_heads = out_dim(module.to_q) // module.head_dimension
            elif isinstance(module, AdaLayerNormContinuous):
                module.embedding_dim = out_dim(module.linear) // 2
            elif isinstance(module, AdaLayerNormZeroSingle):
                module.dim = out_dim(module.linear) // 3
            elif isinstance(module, CLIPSdpaAttention):
                module.head_dimension = out_dim(module.q_proj) // module.num_heads

    return [
        (T5SelfAttention, "shape", staticmethod(t5_shape)),
        (T5SelfAttention, "un_shape", staticmethod(t5_un_shape)),
        (AdaLayerNormZero, "__call__", ada_zero_call),
        after_weights(FluxInitializer, _fit_attributes),
    ]


def _ada_zero_small(self, chunk, hidden_states, text_embeddings):
    from mlx import nn

    text_embeddings = self.linear(nn.silu(text_embeddings))
    parts = [text_embeddings[:, i * chunk : (i + 1) * chunk] for i in range(6)]
    shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = parts
    hidden_states = self.norm(hidden_states) * (1 + scale_msa[:, None]) + shift_msa[:, None]
    return hidden_states, gate_msa, shift_mlp, scale_mlp, gate_mlp


def tiny_mflux_patches() -> contextlib.AbstractContextManager[None]:
    """The patches for the duration of a ``with`` block."""
    return patched(_patches())
