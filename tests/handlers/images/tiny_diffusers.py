"""A tiny randomly initialised Stable Diffusion 1.x pipeline, built on the fly.

Stable Diffusion 1.x because it is the simplest diffusers family that
``AutoPipelineForText2Image``, ``AutoPipelineForImage2Image`` and
``AutoPipelineForInpainting`` all map (``"stable-diffusion"``), and every part
of it can be written here without the Hugging Face hub:

* a 2-level ``UNet2DConditionModel`` (channels 8/16, one layer per block,
  cross-attention width 16), 4 latent channels, or 9 with ``inpainting=True``
  (latents + mask + masked-image latents, like ``runwayml/stable-diffusion-inpainting``);
* a 4-level ``AutoencoderKL`` (all levels 8 channels), so the VAE scale factor is
  8 as in the real model: a 64x64 image is an 8x8x4 latent;
* a 1-layer ``CLIPTextModel`` (hidden 16) with a byte-level CLIP BPE tokenizer:
  256 bytes, the same 256 with ``</w>``, ``<|startoftext|>`` and
  ``<|endoftext|>``; no merges, so any text tokenizes, one token per byte;
  ``model_max_length`` 77 as in CLIP;
* an ``EulerDiscreteScheduler`` with SD 1.5's noise schedule;
* no safety checker or feature extractor (``requires_safety_checker: false``).

Sizes must be multiples of 8 (the pipelines' ``check_inputs``); the default is
64x64 (``unet.sample_size`` 8 times the VAE factor 8). Honest plumbing, no
claim of quality: the output is noise, though deterministic for a seed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

HIDDEN = 16
SAMPLE_SIZE = 8  # latent side; default image side = 8 * VAE factor 8 = 64
MAX_LENGTH = 77
BOS, EOS = "<|startoftext|>", "<|endoftext|>"


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table (transformers' own), in byte order."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    table = bytes_to_unicode()
    return {b: table[b] for b in range(256)}


def _clip_vocab() -> dict[str, int]:
    chars = list(_bytes_to_unicode().values())
    tokens = chars + [c + "</w>" for c in chars] + [BOS, EOS]
    return {token: i for i, token in enumerate(tokens)}


def build_tiny_diffusers(dest: Path, *, inpainting: bool = False) -> Path:
    """Write the pipeline folder into ``dest`` and return ``dest``.

    ``inpainting=False`` writes a ``StableDiffusionPipeline`` (4-channel UNet)
    that all three auto pipelines load; inpainting with it uses the pipeline's
    legacy path (latents blended with the noised original outside the mask at
    each step). ``inpainting=True`` writes a ``StableDiffusionInpaintPipeline``
    with a 9-channel UNet, usable for inpainting only."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionInpaintPipeline,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):  # the caller's RNG stays as it was
        torch.manual_seed(0)
        vocab = _clip_vocab()
        tokenizer = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=MAX_LENGTH)

        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=len(vocab),
                hidden_size=HIDDEN,
                intermediate_size=32,
                num_hidden_layers=1,
                num_attention_heads=2,
                max_position_embeddings=MAX_LENGTH,
                projection_dim=HIDDEN,
                bos_token_id=vocab[BOS],
                eos_token_id=vocab[EOS],
                pad_token_id=vocab[EOS],
            )
        )
        unet = UNet2DConditionModel(
            sample_size=SAMPLE_SIZE,
            in_channels=9 if inpainting else 4,
            out_channels=4,
            block_out_channels=(8, 16),
            layers_per_block=1,
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=HIDDEN,
            attention_head_dim=2,
            norm_num_groups=4,
        )
        vae = AutoencoderKL(
            in_channels=3,
            out_channels=3,
            latent_channels=4,
            block_out_channels=(8, 8, 8, 8),
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            layers_per_block=1,
            norm_num_groups=4,
            sample_size=SAMPLE_SIZE * 8,
        )
        scheduler = EulerDiscreteScheduler(
            num_train_timesteps=1000,
            beta_start=0.00085,
            beta_end=0.012,
            beta_schedule="scaled_linear",
            steps_offset=1,
            timestep_spacing="leading",
        )
        cls: Any = StableDiffusionInpaintPipeline if inpainting else StableDiffusionPipeline
        pipe = cls(
            vae=vae,
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            unet=unet,
            scheduler=scheduler,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
    pipe.save_pretrained(dest)
    # CLIP's classic files too, beside the tokenizer.json transformers 5 writes.
    tok_dir = dest / "tokenizer"
    (tok_dir / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (tok_dir / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    return dest


def build_tiny_lora(pipeline_dir: Path, dest: Path, *, seed: int = 0) -> Path:
    """A LoRA for the tiny pipeline at ``pipeline_dir``, as diffusers' training
    scripts save one (``pytorch_lora_weights.safetensors`` in ``dest``): rank 4
    on the UNet's attention projections, ``lora_B`` random (training starts it
    at zero, which would change nothing)."""
    import torch
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    unet = StableDiffusionPipeline.from_pretrained(str(pipeline_dir)).unet
    targets = ["to_q", "to_k", "to_v", "to_out.0"]
    unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=targets))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in unet.named_parameters():
            if "lora_" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    StableDiffusionPipeline.save_lora_weights(str(dest), unet_lora_layers=layers)
    return dest
