"""A real mlx-lm LoRA adapter for the embedded model, built in the tests: the
embedded GGUF converted to an MLX folder, and an adapter folder
(``adapter_config.json`` + ``adapters.safetensors``, what ``mlx_lm.lora``
writes) whose random ``lora_b`` weights visibly change greedy answers."""

from __future__ import annotations

import json
from pathlib import Path

from bodega.settings import embedded_lm_path

KEYS = ["self_attn.q_proj", "self_attn.v_proj", "mlp.down_proj"]


def mlx_folder(out: Path) -> Path:
    """The embedded model as an MLX model folder under ``out``."""
    from handlers.convert.gguf_to_mlx import convert_gguf

    path = embedded_lm_path()
    assert path is not None
    return convert_gguf(path, out)


def write_adapter(model_dir: Path, out: Path, seed: int = 0) -> Path:
    """An mlx-lm LoRA adapter folder for ``model_dir``: rank 4 on every layer's
    ``KEYS``, both matrices random (training starts ``lora_b`` at zero)."""
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm import load
    from mlx_lm.tuner.utils import linear_to_lora_layers

    model, _ = load(str(model_dir))
    layers = len(model.layers)
    parameters = {"rank": 4, "scale": 20.0, "dropout": 0.0, "keys": KEYS}
    linear_to_lora_layers(model, layers, parameters)
    mx.random.seed(seed)
    weights = {
        name: mx.random.normal(value.shape) * 0.05
        for name, value in tree_flatten(model.parameters())
        if name.rsplit(".", 1)[-1] in ("lora_a", "lora_b")
    }
    out.mkdir(parents=True, exist_ok=True)
    mx.save_safetensors(str(out / "adapters.safetensors"), weights)
    config = {"fine_tune_type": "lora", "num_layers": layers, "lora_parameters": parameters}
    (out / "adapter_config.json").write_text(json.dumps(config))
    return out
