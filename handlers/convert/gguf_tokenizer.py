"""The tokenizer of a GGUF file as Hugging Face ``tokenizers`` files.

A byte-level BPE (``tokenizer.ggml.model == "gpt2"``) is rebuilt from the
GGUF metadata: vocabulary, merges, token types, special ids, the
pre-tokenizer named by ``tokenizer.ggml.pre`` and the chat template.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class TokenizerError(ValueError):
    """The GGUF's tokenizer cannot be converted."""


# GGUF token types (llama.cpp's llama_token_type).
_TOKEN_NORMAL, _TOKEN_CONTROL, _TOKEN_USER_DEFINED = 1, 3, 4

# Pre-tokenizers (``tokenizer.ggml.pre``) whose Hugging Face equivalent we know.
_BYTE_LEVEL = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True}
_LLAMA3_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_PRE_TOKENIZERS: dict[str, dict[str, Any]] = {
    # GPT-2's regex, with every digit its own piece first.
    **{
        name: {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Digits", "individual_digits": True},
                {**_BYTE_LEVEL, "use_regex": True},
            ],
        }
        for name in ("smollm", "starcoder", "refact")
    },
    "gpt-2": {**_BYTE_LEVEL, "use_regex": True},
    "llama-bpe": {
        "type": "Sequence",
        "pretokenizers": [
            {
                "type": "Split",
                "pattern": {"Regex": _LLAMA3_REGEX},
                "behavior": "Isolated",
                "invert": False,
            },
            {**_BYTE_LEVEL, "use_regex": False},
        ],
    },
}
# llama.cpp ignores merges for whole words in the vocabulary with these.
_IGNORE_MERGES = {"llama-bpe"}


def check_tokenizer(path: Path, meta: dict[str, Any], vocab_size: int) -> None:
    """Raise TokenizerError unless the GGUF tokenizer converts to Hugging Face's format."""
    model = meta.get("tokenizer.ggml.model")
    if model != "gpt2":
        raise TokenizerError(
            f"{path.name}: tokenizer model {model!r} is not supported; only byte-level "
            "BPE ('gpt2') tokenizers convert"
        )
    pre = meta.get("tokenizer.ggml.pre", "gpt-2")
    if pre not in _PRE_TOKENIZERS:
        raise TokenizerError(
            f"{path.name}: pre-tokenizer {pre!r} is not supported; supported: "
            f"{', '.join(sorted(_PRE_TOKENIZERS))}"
        )
    tokens = meta.get("tokenizer.ggml.tokens")
    if not isinstance(tokens, list) or not isinstance(meta.get("tokenizer.ggml.merges"), list):
        raise TokenizerError(f"{path.name}: the GGUF holds no tokenizer vocabulary or merges")
    if len(tokens) > vocab_size:
        raise TokenizerError(
            f"{path.name}: {len(tokens)} tokens but an embedding of {vocab_size} rows"
        )


def _token(content: str, special: bool) -> dict[str, Any]:
    return {
        "content": content,
        "single_word": False,
        "lstrip": False,
        "rstrip": False,
        "normalized": False,
        "special": special,
    }


def tokenizer_files(meta: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``tokenizer.json``, ``tokenizer_config.json`` and ``special_tokens_map.json``."""
    tokens: list[str] = meta["tokenizer.ggml.tokens"]
    types: list[int] = meta.get("tokenizer.ggml.token_type") or [_TOKEN_NORMAL] * len(tokens)
    merges: list[str] = meta["tokenizer.ggml.merges"]
    pre = meta.get("tokenizer.ggml.pre", "gpt-2")

    vocab: dict[str, int] = {}
    for i, token in enumerate(tokens):
        vocab.setdefault(token, i)  # a duplicate string keeps its first id
    added = [
        {"id": i, **_token(tokens[i], special=types[i] == _TOKEN_CONTROL)}
        for i in range(len(tokens))
        if types[i] in (_TOKEN_CONTROL, _TOKEN_USER_DEFINED)
    ]

    def special_token(key: str) -> str | None:
        value = meta.get(f"tokenizer.ggml.{key}_token_id")
        if value is None or not 0 <= int(value) < len(tokens):
            return None
        return tokens[int(value)]

    bos, eos = special_token("bos"), special_token("eos")
    unk, pad = special_token("unknown"), special_token("padding")
    add_bos = bool(meta.get("tokenizer.ggml.add_bos_token", False)) and bos is not None
    add_eos = bool(meta.get("tokenizer.ggml.add_eos_token", False)) and eos is not None

    post_processor: dict[str, Any] = {
        "type": "ByteLevel",
        "add_prefix_space": False,
        "trim_offsets": False,
        "use_regex": True,
    }
    if add_bos or add_eos:

        def template(type_id: int, seq: str) -> list[dict[str, Any]]:
            parts: list[dict[str, Any]] = []
            if add_bos:
                parts.append({"SpecialToken": {"id": bos, "type_id": type_id}})
            parts.append({"Sequence": {"id": seq, "type_id": type_id}})
            if add_eos:
                parts.append({"SpecialToken": {"id": eos, "type_id": type_id}})
            return parts

        used = [t for t, on in ((bos, add_bos), (eos, add_eos)) if on and t is not None]
        post_processor = {
            "type": "TemplateProcessing",
            "single": template(0, "A"),
            "pair": template(0, "A") + template(1, "B"),
            "special_tokens": {t: {"id": t, "ids": [vocab[t]], "tokens": [t]} for t in used},
        }

    tokenizer_json = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": _PRE_TOKENIZERS[pre],
        "post_processor": post_processor,
        "decoder": {
            "type": "ByteLevel",
            "add_prefix_space": True,
            "trim_offsets": True,
            "use_regex": True,
        },
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": pre in _IGNORE_MERGES,
            "vocab": vocab,
            "merges": [m.split(" ", 1) for m in merges],
        },
    }

    specials = {
        f"{key}_token": value
        for key, value in (("bos", bos), ("eos", eos), ("unk", unk), ("pad", pad))
        if value is not None
    }
    tokenizer_config: dict[str, Any] = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "add_bos_token": add_bos,
        "add_eos_token": add_eos,
        "add_prefix_space": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": int(meta.get("llama.context_length") or 4096),
        "added_tokens_decoder": {
            str(t["id"]): {k: v for k, v in t.items() if k != "id"} for t in added
        },
        **specials,
    }
    chat_template = meta.get("tokenizer.chat_template")
    if isinstance(chat_template, str) and chat_template:
        tokenizer_config["chat_template"] = chat_template
    special_map = {key: _token(value, True) for key, value in specials.items()}
    return {
        "tokenizer.json": tokenizer_json,
        "tokenizer_config.json": tokenizer_config,
        "special_tokens_map.json": special_map,
    }
