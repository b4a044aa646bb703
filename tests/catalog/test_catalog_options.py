"""catalog.options: one set of load options and defaults for server and handler."""

from __future__ import annotations

import inspect
from typing import Any

import msgspec
import pytest

from bodega.registry.handler import load_spec
from bodega.settings import ModelSpec
from catalog.engines import ENGINE_SPECIFIC
from catalog.options import LoadOptions, load_options, unhonoured

SERVER_ONLY = {
    "queue_size",
    "queue_timeout",
    "restart",
    "revision",
    "filename",
    "quant",
    "auto_download",
    "pinned",
    "warmup",
    "keep_alive",
    "defaults",
    "priority_aging",
}

# A value away from the default for every ModelSpec field.
EVERY_FIELD: dict[str, Any] = {
    "model_path": "/models/smol.gguf",
    "model_id": "smol",
    "model_type": "embeddings",
    "engine": "llamacpp",
    "context_length": 2048,
    "max_concurrency": 4,
    "prompt_cache_size": 8,
    "n_threads": 2,
    "quantize": 4,
    "config_name": "schnell",
    "lora_paths": ["/adapters/a"],
    "lora_scales": [0.5],
    "disable_auto_resize": True,
    "mmproj_path": "/m/mmproj-model-f16.gguf",
    "max_images": 4,
    "max_image_pixels": 1_000_000,
    "enable_auto_tool_choice": True,
    "tool_call_parser": "qwen3",
    "reasoning_parser": "qwen3",
    "trust_remote_code": True,
    "chat_template_file": "/tmp/t.jinja",
    "draft_model_path": "/models/draft",
    "num_draft_tokens": 4,
    "batch_window_ms": 5.0,
    "max_batch_size": 8,
    "embedding_cache_size": 0,
    "queue_size": 7,
    "queue_timeout": 9.5,
    "restart": "never",
    "revision": "v1",
    "filename": "m.Q4_0.gguf",
    "quant": "Q4_0",
    "auto_download": True,
    "pinned": True,
    "warmup": False,
    "keep_alive": 30.0,
    "defaults": {"temperature": 0.2, "max_tokens": 3},
    "priority_aging": 5.0,
    "n_batch": 256,
    "n_gpu_layers": 0,
    "use_mmap": False,
    "use_mlock": True,
    "device": "cpu",
}


def _names(struct: type[msgspec.Struct]) -> set[str]:
    return {f.name for f in msgspec.structs.fields(struct)}


def test_model_spec_is_load_options_plus_server_options() -> None:
    assert issubclass(ModelSpec, LoadOptions)
    assert _names(ModelSpec) == _names(LoadOptions) | SERVER_ONLY
    assert not _names(LoadOptions) & SERVER_ONLY
    # ModelSpec redeclares none of the load options: one default each.
    shared = {f.name: f for f in msgspec.structs.fields(LoadOptions)}
    for field in msgspec.structs.fields(ModelSpec):
        if field.name in shared:
            assert field == shared[field.name]
    assert not set(ModelSpec.__annotations__) - SERVER_ONLY


def test_struct_configs() -> None:
    for struct in (LoadOptions, ModelSpec):
        config = struct.__struct_config__
        assert config.forbid_unknown_fields and config.omit_defaults
        kinds = {p.kind for p in inspect.signature(struct).parameters.values()}
        assert kinds == {inspect.Parameter.KEYWORD_ONLY}


def test_defaults() -> None:
    spec = ModelSpec(model_path="m")
    assert spec.prompt_cache_size == 10 and spec.restart == "on-failure"
    assert spec.queue_size == 100 and spec.queue_timeout == 300
    assert LoadOptions(model_path="m").prompt_cache_size == 10
    assert spec.id == "m" and ModelSpec(model_path="m", model_id="x").id == "x"


def test_constraints_come_with_the_options() -> None:
    with pytest.raises(msgspec.ValidationError, match="max_concurrency"):
        msgspec.convert({"model_path": "m", "max_concurrency": 0}, LoadOptions)
    with pytest.raises(msgspec.ValidationError, match="restart"):
        msgspec.convert({"model_path": "m", "restart": "sometimes"}, ModelSpec)
    with pytest.raises(msgspec.ValidationError, match="unknown field `queue_size`"):
        msgspec.convert({"model_path": "m", "queue_size": 3}, LoadOptions)


def test_load_spec_carries_every_load_option() -> None:
    assert set(EVERY_FIELD) == _names(ModelSpec)  # a new field must be added above
    spec = msgspec.convert(EVERY_FIELD, ModelSpec)
    sent = load_spec(spec, "sentence-transformers")
    assert type(sent) is LoadOptions
    expected = {k: v for k, v in EVERY_FIELD.items() if k not in SERVER_ONLY}
    expected["engine"] = "sentence-transformers"
    assert msgspec.to_builtins(sent) == expected
    # Through the handler's command line and back.
    wire = msgspec.json.encode(sent)
    assert msgspec.json.decode(wire, type=LoadOptions) == sent


def test_load_spec_resolves_the_id_and_sends_defaults_as_defaults() -> None:
    sent = load_spec(ModelSpec(model_path="/m.gguf", queue_size=5), "llamacpp")
    assert sent == LoadOptions(model_path="/m.gguf", model_id="/m.gguf", engine="llamacpp")
    assert msgspec.json.decode(msgspec.json.encode(sent), type=LoadOptions).prompt_cache_size == 10


def test_load_options_validates() -> None:
    spec = ModelSpec(model_path="m")
    with pytest.raises(msgspec.ValidationError):
        load_options(spec, engine="nonsense")
    assert load_options(spec) == LoadOptions(model_path="m")


def test_unhonoured_names_engine_specific_options_off_their_default() -> None:
    assert unhonoured(ModelSpec(model_path="m"), frozenset()) == []
    spec = ModelSpec(model_path="m", lora_paths=["a"], trust_remote_code=True, queue_size=3)
    assert unhonoured(spec, frozenset()) == ["lora_paths", "trust_remote_code"]
    assert unhonoured(spec, frozenset({"lora_paths"})) == ["trust_remote_code"]
    assert set(ENGINE_SPECIFIC) <= _names(LoadOptions)
