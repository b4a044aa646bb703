"""A tiny randomly initialised FLUX.2 klein model for mflux, built on the fly.

mflux's ``Flux2Initializer._init_models`` always builds FLUX.2 klein at the size
its config names (``flux2-klein-4b``: a 3072-wide transformer of 24 heads with
5 double-stream and 20 single-stream blocks reading a 7680-wide text context;
a 36-layer 2560-wide Qwen3 text encoder with 32/8 attention heads, whose
hidden states 9, 18 and 27 form that context; a 128/256/512-channel VAE), so a
tiny model takes two parts:

* ``build_tiny_flux2(dest)`` writes a folder in mflux's own saved layout (what
  ``mflux-save`` writes: ``transformer/``, ``text_encoder/``, ``vae/``
  safetensors carrying ``mflux_version`` metadata, plus a local byte-level BPE
  ``tokenizer/`` with a Qwen-style chat template), which
  ``Flux2KleinEdit(model_config=ModelConfig.from_name("flux2-klein-4b"),
  model_path=str(dest))`` (or ``Flux2Klein``) loads through mflux's own
  WeightLoader / WeightApplier / TokenizerLoader. The arrays come from the
  same mflux modules built small through their constructor arguments (one
  head of 128 and one block of each kind in the transformer, 3 narrow layers
  in the text encoder, 32/64/32/32-channel VAE blocks), then re-drawn: norm
  scales at one, biases at zero, the VAE's latent statistics at mean 0 /
  variance 1, everything else normal with a 1/sqrt(fan in) scale. Module
  parameter shapes are not checked by mlx's ``Module.update``, so the tiny
  arrays simply replace the (never evaluated, lazily initialised) full-size
  ones. The head size stays at 128 in both attention stacks and the packed
  latent keeps its 128 channels (32 latent channels x 2x2), so both rotary
  tables and the latent plumbing are mflux's own.
* ``tiny_flux2_patches()`` (a context manager; ``_patches()`` lists them)
  fixes what the
  weights alone cannot: the attention modules keep their head counts and
  widths as plain attributes set at construction (24 heads and a 3072-wide
  q/k/v split in the transformer, 32 query / 8 key-value heads in the text
  encoder), the output norm keeps its 3072-wide modulation chunk, and the
  block lists keep their 5 / 20 / 36 entries, the surplus ones still lazy and
  full size. After mflux applies the weights, the patch drops the blocks the
  checkpoint did not fill and reads each of those numbers off the loaded
  projection widths. mflux also asks the text encoder for its hidden states 9,
  18 and 27 as literals at its call sites; when the encoder has fewer layers
  than that, the patch spreads the indices over the layers it has (1, 2, 3
  here), since running 27 layers over the 512 padded prompt tokens would take
  most of a tiny generation's time. For the real model it computes the same
  numbers and reads the same hidden states, so it is harmless if left on. It
  must be active while the model is built and run, in the same process.

Note (mflux 0.24.0): ``Flux2KleinEdit.generate_image`` needs at least one
reference image; without ``image_paths`` it fails in mflux itself
(``flux2_klein_edit.py:280``, ``mx.concatenate([latents, None])``). Plain
text-to-image goes through ``Flux2Klein``, which loads the same folder.

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

# Head size of both attention stacks, as in FLUX.2 (the transformer's rope axes
# 4 x 32 and the text encoder's rotary table both cover 128 dims).
HEAD_DIM = 128
# Transformer: 1 head of 128 (the MLP keeps FLUX.2's ratio of 3).
HEADS = 1
# Text encoder (Qwen3): 2 query heads, 1 key-value head, of 128.
TEXT_HIDDEN = 64
TEXT_HEADS = 2
TEXT_KV_HEADS = 1
TEXT_FF = 128
# FLUX.2 klein concatenates the text encoder's hidden states 9, 18 and 27
# (index 0 is the embedding output; the indices are literals at mflux's call
# sites); with 3 layers the patch reads hidden states 1, 2 and 3 instead.
TEXT_LAYERS = 3  # of 36
TEXT_OUT_LAYERS = 3
# VAE: its 128/256/512/512 block widths at 32/64/32/32 (multiples of the 32
# GroupNorm groups). They stay distinct where FLUX.2's differ, so the resnets
# that carry a 1x1 shortcut conv at full size carry one here too (mflux calls
# any shortcut the full-size module has).
VAE_CHANNELS = (32, 64, 32, 32)

DOUBLE_BLOCKS = 1  # of 5
SINGLE_BLOCKS = 1  # of 20


def _tiny_modules(vocab: int) -> dict[str, Any]:
    from mflux.models.flux2.model.flux2_text_encoder.qwen3_text_encoder import Qwen3TextEncoder
    from mflux.models.flux2.model.flux2_transformer.transformer import Flux2Transformer
    from mflux.models.flux2.model.flux2_vae.encoder.encoder import Flux2Encoder
    from mflux.models.flux2.model.flux2_vae.vae import Flux2VAE

    # The same classes mflux loads into, built small through their constructor
    # arguments (mlx is lazy: their own random arrays are never evaluated).
    transformer = Flux2Transformer(
        num_layers=DOUBLE_BLOCKS,
        num_single_layers=SINGLE_BLOCKS,
        attention_head_dim=HEAD_DIM,
        num_attention_heads=HEADS,
        joint_attention_dim=TEXT_OUT_LAYERS * TEXT_HIDDEN,
    )
    text_encoder = Qwen3TextEncoder(
        vocab_size=vocab,
        hidden_size=TEXT_HIDDEN,
        num_hidden_layers=TEXT_LAYERS,
        num_attention_heads=TEXT_HEADS,
        num_key_value_heads=TEXT_KV_HEADS,
        intermediate_size=TEXT_FF,
        head_dim=HEAD_DIM,
    )
    vae = Flux2VAE(decoder_block_out_channels=VAE_CHANNELS)
    vae.encoder = Flux2Encoder(block_out_channels=VAE_CHANNELS)
    return {"transformer": transformer, "text_encoder": text_encoder, "vae": vae}


def build_tiny_flux2(dest: Path) -> Path:
    """Write the tiny FLUX.2 klein folder into ``dest`` (created if needed) and
    return it. ``flux2-klein-4b`` (``Flux2KleinEdit``, ``Flux2Klein``) loads
    it; the transformer has no guidance embedder, as in klein."""
    from mflux.models.common_models.qwen3_vl.qwen3_vl_rms_norm import Qwen3VLRMSNorm

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    vocab = write_qwen_tokenizer(dest)
    save_components(
        dest,
        {
            component: random_params(module, seed, norm_types=(Qwen3VLRMSNorm,))
            for seed, (component, module) in enumerate(_tiny_modules(vocab).items())
        },
    )
    (dest / "tiny_flux2.json").write_text(
        json.dumps(
            {
                "hidden": HEADS * HEAD_DIM,
                "text_hidden": TEXT_HIDDEN,
                "text_layers": TEXT_LAYERS,
                "vae_channels": list(VAE_CHANNELS),
            }
        )
        + "\n"
    )
    return dest


# --- the patches -------------------------------------------------------------


def _patches() -> list[tuple[Any, str, Any]]:
    from mflux.models.common_models.qwen3_vl.qwen3_vl_attention import Qwen3VLAttention
    from mflux.models.flux.model.flux_transformer.ada_layer_norm_continuous import (
        AdaLayerNormContinuous,
    )
    from mflux.models.flux2.flux2_initializer import Flux2Initializer
    from mflux.models.flux2.model.flux2_text_encoder.qwen3_text_encoder import Qwen3TextEncoder
    from mflux.models.flux2.model.flux2_transformer.attention import Flux2Attention
    from mflux.models.flux2.model.flux2_transformer.parallel_self_attention import (
        Flux2ParallelSelfAttention,
    )

    def _fit_attributes(model: Any) -> None:
        # The block lists are built at their full count; drop the ones the
        # checkpoint left at their (lazy, never evaluated) full size.
        transformer = model.transformer
        transformer.transformer_blocks = loaded_prefix(
            transformer.transformer_blocks, lambda b: b.attn.to_q
        )
        transformer.single_transformer_blocks = loaded_prefix(
            transformer.single_transformer_blocks, lambda b: b.attn.to_qkv_mlp_proj
        )
        transformer.inner_dim = out_dim(transformer.x_embedder)
        modules = [transformer]
        encoder = model.text_encoder
        if encoder is not None and hasattr(encoder, "layers"):
            encoder.layers = loaded_prefix(encoder.layers, lambda layer: layer.self_attn.q_proj)
            encoder.num_hidden_layers = len(encoder.layers)
            encoder.hidden_size = out_dim(encoder.layers[0].self_attn.o_proj)
            modules.append(encoder)
        for module in modules:
            for _, sub in module.named_modules():
                if isinstance(sub, Flux2Attention):
                    sub.inner_dim = out_dim(sub.to_q)
                    sub.heads = sub.inner_dim // sub.dim_head
                elif isinstance(sub, Flux2ParallelSelfAttention):
                    # to_qkv_mlp_proj: 3 * inner + 2 * mlp out; to_out: inner + mlp in.
                    both = _in_dim(sub.to_out)
                    sub.inner_dim = out_dim(sub.to_qkv_mlp_proj) - 2 * both
                    sub.mlp_hidden_dim = both - sub.inner_dim
                    sub.heads = sub.inner_dim // sub.dim_head
                elif isinstance(sub, AdaLayerNormContinuous):
                    sub.embedding_dim = out_dim(sub.linear) // 2
                elif isinstance(sub, Qwen3VLAttention):
                    sub.hidden_size = out_dim(sub.o_proj)
                    sub.num_attention_heads = out_dim(sub.q_proj) // sub.head_dim
                    sub.num_key_value_heads = out_dim(sub.k_proj) // sub.head_dim
                    sub.num_key_value_groups = sub.num_attention_heads // sub.num_key_value_heads

    original_prompt_embeds = Qwen3TextEncoder.get_prompt_embeds

    def get_prompt_embeds(
        self: Any,
        input_ids: Any,
        attention_mask: Any = None,
        hidden_state_layers: tuple[int, ...] = (9, 18, 27),
        position_ids: Any = None,
    ) -> Any:
        return original_prompt_embeds(
            self,
            input_ids=input_ids,
            attention_mask=attention_mask,
            hidden_state_layers=_spread_layers(hidden_state_layers, len(self.layers)),
            position_ids=position_ids,
        )

    return [
        after_weights(Flux2Initializer, _fit_attributes),
        (Qwen3TextEncoder, "get_prompt_embeds", get_prompt_embeds),
    ]


def _spread_layers(indices: tuple[int, ...], layers: int) -> tuple[int, ...]:
    # Hidden state i is the output of layer i (0: the embeddings). Indices the
    # encoder has are kept; past its depth they scale down onto its layers.
    top = max(indices, default=0)
    if top <= layers:
        return tuple(indices)
    return tuple(max(1, i * layers // top) if i > 0 else 0 for i in indices)


def _in_dim(linear: Any) -> int:
    # A quantized Linear packs its input side into 32-bit words.
    bits = getattr(linear, "bits", None)
    return linear.weight.shape[1] * 32 // bits if bits else linear.weight.shape[1]


def tiny_flux2_patches() -> contextlib.AbstractContextManager[None]:
    """The patches for the duration of a ``with`` block."""
    return patched(_patches())
