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
