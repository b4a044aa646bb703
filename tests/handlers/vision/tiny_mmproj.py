"""A tiny randomly initialised multimodal projector (mmproj) GGUF for llama.cpp.

Written on the fly with the ``gguf`` package's GGUFWriter, the writer
llama.cpp's own converters use, so tests can load a multimodal model in
llama.cpp's mtmd without the Hugging Face hub. The projector type is
"gemma3": a SigLIP-style ViT (learned position embeddings, LayerNorm, GELU
MLP), then a ``scale_factor`` x ``scale_factor`` average pool, an RMS norm
(``mm.soft_emb_norm.weight``) and one projection (``mm.input_projection.weight``)
to the text model's width. mtmd resizes every image to ``image_size`` square,
so each image costs a fixed ``(image_size / patch_size / scale_factor) ** 2``
tokens (16 with the defaults), plus the few text tokens of its
``<start_of_image>`` / ``<end_of_image>`` wrapping.

Honest plumbing for the vision path, no claim of quality: the embeddings are
noise. ``build_tiny_text_gguf`` writes a matching tiny llama text model with a
byte-level tokenizer, for tests that want no packaged model at all.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

IMAGE_SIZE = 64
PATCH_SIZE = 8
SCALE_FACTOR = 2  # pooling kernel per side: (64 / 8 / 2) ** 2 = 16 tokens an image
TOKENS_PER_IMAGE = (IMAGE_SIZE // PATCH_SIZE // SCALE_FACTOR) ** 2

VISION_HIDDEN = 32
VISION_HEADS = 2
VISION_FF = 64  # != VISION_HIDDEN, or llama.cpp's legacy check swaps ffn up/down
VISION_LAYERS = 1
EPS = 1e-6


def build_tiny_mmproj(dest: Path, n_embd_text: int, *, seed: int = 0) -> Path:
    """Write a tiny "gemma3" mmproj GGUF to ``dest`` (a file, or a folder to
    hold ``mmproj-tiny.gguf``) whose image embeddings are ``n_embd_text`` wide;
    returns the file's path."""
    import gguf

    dest = Path(dest)
    path = dest / "mmproj-tiny.gguf" if dest.is_dir() else dest
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)

    def rand(*shape: int, scale: float = 0.02) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    def ones(n: int) -> np.ndarray:
        return np.ones(n, dtype=np.float32)

    def zeros(n: int) -> np.ndarray:
        return np.zeros(n, dtype=np.float32)

    d, ff = VISION_HIDDEN, VISION_FF
    n_patches = (IMAGE_SIZE // PATCH_SIZE) ** 2

    writer = gguf.GGUFWriter(str(path), arch="clip")
    writer.add_name("tiny-mmproj")
    writer.add_description("tiny random gemma3-type projector for tests")
    writer.add_file_type(0)  # all F32
    writer.add_bool("clip.has_vision_encoder", True)
    writer.add_bool("clip.has_audio_encoder", False)
    writer.add_string("clip.projector_type", "gemma3")
    writer.add_bool("clip.use_gelu", True)
    writer.add_uint32("clip.vision.image_size", IMAGE_SIZE)
    writer.add_uint32("clip.vision.patch_size", PATCH_SIZE)
    writer.add_uint32("clip.vision.embedding_length", d)
    writer.add_uint32("clip.vision.feed_forward_length", ff)
    writer.add_uint32("clip.vision.block_count", VISION_LAYERS)
    writer.add_uint32("clip.vision.attention.head_count", VISION_HEADS)
    writer.add_float32("clip.vision.attention.layer_norm_epsilon", EPS)
    writer.add_uint32("clip.vision.projection_dim", n_embd_text)
    writer.add_uint32("clip.vision.projector.scale_factor", SCALE_FACTOR)
    # Required: clip.cpp asserts (aborts the process) without them.
    writer.add_array("clip.vision.image_mean", [0.5, 0.5, 0.5])
    writer.add_array("clip.vision.image_std", [0.5, 0.5, 0.5])

    # numpy shapes are ggml's ne reversed: a (out, in) matrix is ne [in, out].
    writer.add_tensor("v.patch_embd.weight", rand(d, 3, PATCH_SIZE, PATCH_SIZE))
    writer.add_tensor("v.patch_embd.bias", zeros(d))
    writer.add_tensor("v.position_embd.weight", rand(n_patches, d))
    for i in range(VISION_LAYERS):
        blk = f"v.blk.{i}"
        writer.add_tensor(f"{blk}.ln1.weight", ones(d))
        writer.add_tensor(f"{blk}.ln1.bias", zeros(d))
        for name in ("attn_q", "attn_k", "attn_v", "attn_out"):
            writer.add_tensor(f"{blk}.{name}.weight", rand(d, d))
            writer.add_tensor(f"{blk}.{name}.bias", zeros(d))
        writer.add_tensor(f"{blk}.ln2.weight", ones(d))
        writer.add_tensor(f"{blk}.ln2.bias", zeros(d))
        writer.add_tensor(f"{blk}.ffn_up.weight", rand(ff, d))
        writer.add_tensor(f"{blk}.ffn_up.bias", zeros(ff))
        writer.add_tensor(f"{blk}.ffn_down.weight", rand(d, ff))
        writer.add_tensor(f"{blk}.ffn_down.bias", zeros(d))
    writer.add_tensor("v.post_ln.weight", ones(d))
    writer.add_tensor("v.post_ln.bias", zeros(d))
    writer.add_tensor("mm.soft_emb_norm.weight", ones(d))
    # gemma3 multiplies by this matrix transposed: numpy (vision, text), ne
    # [text, vision]; llama.cpp reads the projector's output width from ne[0].
    writer.add_tensor("mm.input_projection.weight", rand(d, n_embd_text, scale=0.5))

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


TEXT_HIDDEN = 64
TEXT_HEADS = 4
TEXT_KV_HEADS = 2
TEXT_FF = 128
TEXT_LAYERS = 2
TEXT_CONTEXT = 2048
TEXT_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# A few merges, so the BPE tables are not empty (llama.cpp requires the key).
TEXT_MERGES = [("Ġ", "t"), ("h", "e"), ("Ġt", "he")]
CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def _byte_tokens() -> list[str]:
    """GPT-2's byte -> printable character table (transformers' own), in byte order."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    table = bytes_to_unicode()
    return [table[b] for b in range(256)]


def build_tiny_text_gguf(dest: Path, *, seed: int = 0) -> Path:
    """Write a tiny randomly initialised llama text model GGUF (hidden
    ``TEXT_HIDDEN``, byte-level BPE vocabulary of 256 bytes, a few merges and
    ChatML's specials, ChatML template) to ``dest`` (a file, or a folder to hold
    ``tiny-text.gguf``); returns the file's path. Pair it with
    ``build_tiny_mmproj(..., TEXT_HIDDEN)``."""
    import gguf

    dest = Path(dest)
    path = dest / "tiny-text.gguf" if dest.is_dir() else dest
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)

    def rand(*shape: int, scale: float = 0.02) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    tokens = _byte_tokens() + [a + b for a, b in TEXT_MERGES] + TEXT_SPECIALS
    types = [gguf.TokenType.NORMAL] * (len(tokens) - len(TEXT_SPECIALS))
    types += [gguf.TokenType.CONTROL] * len(TEXT_SPECIALS)
    special = {t: tokens.index(t) for t in TEXT_SPECIALS}
    n_vocab, d, ff = len(tokens), TEXT_HIDDEN, TEXT_FF
    head_dim = d // TEXT_HEADS
    kv = head_dim * TEXT_KV_HEADS

    writer = gguf.GGUFWriter(str(path), arch="llama")
    writer.add_name("tiny-text")
    writer.add_file_type(0)
    writer.add_context_length(TEXT_CONTEXT)
    writer.add_embedding_length(d)
    writer.add_block_count(TEXT_LAYERS)
    writer.add_feed_forward_length(ff)
    writer.add_head_count(TEXT_HEADS)
    writer.add_head_count_kv(TEXT_KV_HEADS)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(10000.0)
    writer.add_vocab_size(n_vocab)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges([f"{a} {b}" for a, b in TEXT_MERGES])
    writer.add_bos_token_id(special["<|im_start|>"])
    writer.add_eos_token_id(special["<|im_end|>"])
    writer.add_pad_token_id(special["<|endoftext|>"])
    writer.add_add_bos_token(False)
    writer.add_chat_template(CHATML_TEMPLATE)

    writer.add_tensor("token_embd.weight", rand(n_vocab, d, scale=1.0))
    for i in range(TEXT_LAYERS):
        blk = f"blk.{i}"
        writer.add_tensor(f"{blk}.attn_norm.weight", np.ones(d, dtype=np.float32))
        writer.add_tensor(f"{blk}.attn_q.weight", rand(d, d))
        writer.add_tensor(f"{blk}.attn_k.weight", rand(kv, d))
        writer.add_tensor(f"{blk}.attn_v.weight", rand(kv, d))
        writer.add_tensor(f"{blk}.attn_output.weight", rand(d, d))
        writer.add_tensor(f"{blk}.ffn_norm.weight", np.ones(d, dtype=np.float32))
        writer.add_tensor(f"{blk}.ffn_gate.weight", rand(ff, d))
        writer.add_tensor(f"{blk}.ffn_up.weight", rand(ff, d))
        writer.add_tensor(f"{blk}.ffn_down.weight", rand(d, ff))
    writer.add_tensor("output_norm.weight", np.ones(d, dtype=np.float32))
    writer.add_tensor("output.weight", rand(n_vocab, d, scale=1.0))

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
