"""A tiny randomly initialised Qwen2-VL model for mlx-vlm, built on the fly.

Qwen2-VL because mlx-vlm ships a torch-free processor for it (numpy image
processor plus any local tokenizer), so the whole folder can be written here
without the Hugging Face hub: a 2-layer text model (hidden 64) with MRoPE, a
2-block vision tower (embed 32, patch 14, 2x2 merge) and a byte-level BPE
tokenizer of 256 bytes plus Qwen's special tokens. Images are resized to
between 56x56 and 112x112 pixels, so each one costs 4 to 16 image tokens.
Honest plumbing for the vision path, no claim of quality: the output is noise.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PATCH = 14
MERGE = 2
MIN_PIXELS = 56 * 56  # 4 image tokens
MAX_PIXELS = 112 * 112  # 16 image tokens

HIDDEN = 64
VOCAB_SIZE = 256 + 8  # bytes + specials; no padding, or a random head emits ids no tokenizer knows

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
SPECIAL_IDS = {token: 256 + i for i, token in enumerate(SPECIAL_TOKENS)}

# Qwen2-VL's own template (the "type" checks and image counting trimmed).
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Qwen2Tokenizer's pre-tokenizer split (transformers' tokenization_qwen2).
PRETOKENIZE_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
    r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def _bytes_to_unicode() -> list[str]:
    """GPT-2's byte -> printable character table (transformers' own), in byte order."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    table = bytes_to_unicode()
    return [table[b] for b in range(256)]


def _write_tokenizer(dest: Path) -> None:
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers
    from tokenizers.models import BPE

    vocab = {char: i for i, char in enumerate(_bytes_to_unicode())}
    tokenizer = Tokenizer(BPE(vocab=vocab, merges=[], fuse_unk=False, byte_fallback=False))
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens(
        [AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS]
    )
    assert all(tokenizer.token_to_id(t) == i for t, i in SPECIAL_IDS.items())
    tokenizer.save(str(dest / "tokenizer.json"))

    added = {
        str(i): {
            "content": t,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": True,
        }
        for t, i in SPECIAL_IDS.items()
    }
    _write_json(
        dest / "tokenizer_config.json",
        {
            "tokenizer_class": "Qwen2Tokenizer",
            "added_tokens_decoder": added,
            "additional_special_tokens": SPECIAL_TOKENS[1:],
            "bos_token": None,
            "eos_token": "<|im_end|>",
            "pad_token": "<|endoftext|>",
            "unk_token": None,
            "clean_up_tokenization_spaces": False,
            "errors": "replace",
            "model_max_length": 32768,
            "split_special_tokens": False,
            "chat_template": CHAT_TEMPLATE,
        },
    )
    _write_json(dest / "chat_template.json", {"chat_template": CHAT_TEMPLATE})


def _config() -> dict[str, Any]:
    return {
        "architectures": ["Qwen2VLForConditionalGeneration"],
        "model_type": "qwen2_vl",
        "hidden_size": HIDDEN,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-6,
        "vocab_size": VOCAB_SIZE,
        "max_position_embeddings": 4096,
        "rope_theta": 1000000.0,
        # head_dim 16: 8 rotary frequencies split over (time, height, width).
        "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]},
        "tie_word_embeddings": False,  # a tied head echoes the last token
        "torch_dtype": "float32",
        "bos_token_id": SPECIAL_IDS["<|endoftext|>"],
        "eos_token_id": [SPECIAL_IDS["<|im_end|>"], SPECIAL_IDS["<|endoftext|>"]],
        "vision_start_token_id": SPECIAL_IDS["<|vision_start|>"],
        "vision_end_token_id": SPECIAL_IDS["<|vision_end|>"],
        "vision_token_id": SPECIAL_IDS["<|vision_pad|>"],
        "image_token_id": SPECIAL_IDS["<|image_pad|>"],
        "video_token_id": SPECIAL_IDS["<|video_pad|>"],
        "vision_config": {
            "model_type": "qwen2_vl",
            "depth": 2,
            "embed_dim": 32,
            "hidden_size": HIDDEN,  # the merger projects into the text width
            "num_heads": 2,
            "mlp_ratio": 2,
            "in_channels": 3,
            "patch_size": PATCH,
            "spatial_patch_size": PATCH,
            "spatial_merge_size": MERGE,
            "temporal_patch_size": 2,
        },
    }


def _preprocessor_config() -> dict[str, Any]:
    return {
        "image_processor_type": "Qwen2VLImageProcessor",
        "processor_class": "Qwen2VLProcessor",
        "do_convert_rgb": True,
        "do_normalize": True,
        "do_rescale": True,
        "do_resize": True,
        "rescale_factor": 1 / 255,
        "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711],
        "min_pixels": MIN_PIXELS,
        "max_pixels": MAX_PIXELS,
        "size": {"shortest_edge": MIN_PIXELS, "longest_edge": MAX_PIXELS},
        "patch_size": PATCH,
        "temporal_patch_size": 2,
        "merge_size": MERGE,
    }


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def build_tiny_vlm(dest: Path) -> Path:
    """Write the model into ``dest`` (created if needed) and return it."""
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_vlm.models import qwen2_vl

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    config = _config()
    _write_json(dest / "config.json", config)
    _write_json(dest / "preprocessor_config.json", _preprocessor_config())
    # Qwen2-VL keeps its video settings in preprocessor_config.json; a separate
    # file spares mlx-vlm's processor a (failing) hub lookup for one.
    _write_json(dest / "video_preprocessor_config.json", _preprocessor_config())
    _write_json(
        dest / "generation_config.json",
        {"eos_token_id": config["eos_token_id"], "pad_token_id": SPECIAL_IDS["<|endoftext|>"]},
    )
    _write_tokenizer(dest)

    # Instantiate mlx-vlm's own model from the config (as its loader does) so
    # the parameter names and shapes are exactly what it expects.
    model_config = qwen2_vl.ModelConfig.from_dict(json.loads(json.dumps(config)))
    model_config.vision_config = qwen2_vl.VisionConfig.from_dict(config["vision_config"])
    model_config.text_config = qwen2_vl.TextConfig.from_dict(model_config.text_config)
    mx.random.seed(0)
    model = qwen2_vl.Model(model_config)
    weights = dict(tree_flatten(model.parameters()))
    mx.save_safetensors(str(dest / "model.safetensors"), weights, metadata={"format": "mlx"})
    return dest
