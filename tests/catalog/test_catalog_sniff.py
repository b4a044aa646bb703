"""What a repo holds, told from its file names and config.json."""

from __future__ import annotations

import pytest

from catalog.sniff import sniff


@pytest.mark.parametrize(
    ("files", "config", "model_type", "engines"),
    [
        (["model-Q4_K_M.gguf", "README.md"], None, "lm", ["llamacpp"]),
        (["model-Q4_K_M.gguf", "mmproj-model-f16.gguf"], None, "multimodal", ["llamacpp"]),
        (["model_index.json", "unet/config.json"], None, "image-generation", ["diffusers"]),
        (
            ["model_index.json", "transformer/config.json"],
            None,
            "image-generation",
            ["diffusers", "mflux"],
        ),
        (["model.bin", "config.json"], {"alignment_heads": []}, "whisper", ["faster-whisper"]),
        (
            ["weights.safetensors", "config.json"],
            {"n_mels": 80, "n_audio_ctx": 1500},
            "whisper",
            ["mlx"],
        ),
        (["model.safetensors", "config.json"], {"model_type": "whisper"}, "whisper", ["mlx"]),
        (["modules.json", "model.safetensors"], {}, "embeddings", ["sentence-transformers"]),
        (
            ["model.safetensors", "config.json"],
            {"architectures": ["BertForSequenceClassification"]},
            "rerank",
            ["cross-encoder"],
        ),
        (
            ["model.safetensors", "config.json"],
            {"architectures": ["Qwen2VLForConditionalGeneration"], "vision_config": {}},
            "multimodal",
            ["mlx"],
        ),
        (
            ["model.safetensors", "config.json"],
            {"architectures": ["LlamaForCausalLM"]},
            "lm",
            ["mlx"],
        ),
        (["notes.txt"], None, None, []),
    ],
)
def test_sniff(
    files: list[str], config: dict[str, object] | None, model_type: str | None, engines: list[str]
) -> None:
    found = sniff(files, config)
    assert (found.model_type, found.engines) == (model_type, engines)
