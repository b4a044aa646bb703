"""What Bodega does with each top-level field of a chat or completions request.

``FIELDS`` is the one table: every field declared on ``ChatCompletionRequest``
and ``CompletionRequest`` is

- HONOURED: it changes the answer as OpenAI (or the extension's origin) says;
- NO_EFFECT: accepted and ignored, because ignoring it cannot change the
  answer's content (billing, storage, caching hints, abuse tracking);
- REFUSED: a 400 naming it unless it holds its default (or an equivalent
  value), because ignoring it would change the answer.

A field declared on neither Struct is ignored and logged at WARNING once per
field name, with the route it first came on. ``decode_request`` does all of it
in one call; it decodes with a twin of the Struct that forbids unknown fields,
so a body without them (the usual case) is decoded once, as before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeVar, cast

import msgspec

from bodega.errors import InvalidRequest
from bodega.openai.requests import ChatCompletionRequest, CompletionRequest

log = logging.getLogger(__name__)

T = TypeVar("T")


class Handling(Enum):
    """What a declared field does here."""

    HONOURED = "honoured"
    NO_EFFECT = "no effect"
    REFUSED = "refused unless default"


CHAT = "chat"
COMPLETIONS = "completions"
BOTH = (CHAT, COMPLETIONS)


def _unset(value: Any) -> bool:
    return value is None


@dataclass(frozen=True)
class FieldRule:
    """One row of the table. ``allows`` (REFUSED rows only) says whether a
    value is harmless: the default, or one that asks for nothing extra."""

    name: str
    handling: Handling
    apis: tuple[str, ...]
    note: str
    origin: str = "OpenAI"
    allows: Callable[[Any], bool] = _unset


H, N, R = Handling.HONOURED, Handling.NO_EFFECT, Handling.REFUSED
LLAMA_CPP, VLLM, BOTH_PEERS = "llama.cpp", "vLLM", "llama.cpp, vLLM"

FIELDS: tuple[FieldRule, ...] = (
    # --- honoured ---------------------------------------------------------
    FieldRule("model", H, BOTH, 'A loaded model\'s id, or `"current"`.'),
    FieldRule(
        "messages",
        H,
        (CHAT,),
        "The conversation; text and image_url parts (images need a multimodal model).",
    ),
    FieldRule("prompt", H, (COMPLETIONS,), "One string, or a list of one string."),
    FieldRule("max_tokens", H, BOTH, "Upper bound on generated tokens (completions: default 16)."),
    FieldRule("max_completion_tokens", H, (CHAT,), "Wins over `max_tokens`."),
    FieldRule("temperature", H, BOTH, "0-2; default 0.7."),
    FieldRule("top_p", H, BOTH, "0-1; default 1."),
    FieldRule("seed", H, BOTH, "Reproducible sampling; choice i gets `seed + i`."),
    FieldRule("presence_penalty", H, BOTH, "-2 to 2."),
    FieldRule("frequency_penalty", H, BOTH, "-2 to 2."),
    FieldRule("stop", H, BOTH, "A string or up to 16 non-empty strings."),
    FieldRule("n", H, BOTH, "1-16 choices."),
    FieldRule("stream", H, BOTH, "Server-Sent Events, ending with `data: [DONE]`."),
    FieldRule(
        "stream_options",
        H,
        BOTH,
        "`include_usage` honoured; `include_obfuscation` has no effect (no padding is sent).",
    ),
    FieldRule("logprobs", H, BOTH, "Chat: true/false; completions: 0-20 alternatives."),
    FieldRule("top_logprobs", H, (CHAT,), "0-20; needs `logprobs: true`."),
    FieldRule("logit_bias", H, BOTH, "Token id -> -100..100."),
    FieldRule("tools", H, (CHAT,), "Function tools (at most 128)."),
    FieldRule("tool_choice", H, (CHAT,), '`"auto"`, `"none"`, `"required"` or a named function.'),
    FieldRule("parallel_tool_calls", H, (CHAT,), "`false`: at most one call per answer."),
    FieldRule(
        "response_format",
        H,
        (CHAT,),
        "`text`, `json_object`, `json_schema`; llama.cpp's "
        '`{"type": "json_object", "schema": {...}}` constrains to that schema.',
    ),
    FieldRule(
        "reasoning_effort",
        H,
        (CHAT,),
        "Passed to the chat template; `none`/`minimal` turn off a template's "
        "thinking switch where it has one; models without one ignore it.",
    ),
    # --- vendor extensions, honoured --------------------------------------
    FieldRule("top_k", H, BOTH, "0 = off.", BOTH_PEERS),
    FieldRule("min_p", H, BOTH, "0-1; 0 = off.", BOTH_PEERS),
    FieldRule("repetition_penalty", H, BOTH, "> 0; 1 = off.", VLLM),
    FieldRule("chat_template_kwargs", H, (CHAT,), "Extra variables for the chat template.", VLLM),
    FieldRule("ignore_eos", H, BOTH, "Decode past end of sequence.", BOTH_PEERS),
    FieldRule("min_tokens", H, BOTH, "No end of sequence before this many tokens.", VLLM),
    FieldRule(
        "keep_alive",
        H,
        BOTH,
        'How long the model stays loaded once idle: seconds or a duration ("5m", "1h"); '
        "negative: forever; 0: unload when idle. Replaces the model's keep_alive from "
        "this request on; pinned models stay loaded. Also on embeddings and rerank.",
        "Ollama",
    ),
    FieldRule(
        "service_tier",
        H,
        (CHAT,),
        "Mapped onto `priority`: `priority`/`scale` 2, `default`/`auto` 1, `flex` 0; "
        "`priority` wins when both are set; another value is a 400.",
    ),
    FieldRule(
        "priority",
        H,
        BOTH,
        "Admission order when the model's queue is full: 0-9 or `batch` (0), `normal` (1, "
        "default), `interactive` (2); higher first, a waiting request gains one level per "
        "`priority_aging` seconds (default 10). Also on embeddings and rerank.",
        "inference-service",
    ),
    FieldRule(
        "orchestration_mode",
        H,
        (CHAT,),
        "`single`, `critique`, `debate`, `ensemble` or `pipeline`: the answer comes from "
        "several model runs; the response gains `orchestration` (README, Orchestration). "
        "One choice, no tools, no logprobs; never answered from the response cache.",
        "inference-service",
    ),
    FieldRule(
        "orchestration",
        H,
        (CHAT,),
        "Roles per mode overriding config.yaml's `orchestration:` (`critique: {drafter, "
        "critic}`, `debate: {debaters, judge, rounds}`, `ensemble: {members, aggregator}`, "
        "`pipeline: {stages}`) and `stream_stages`; needs `orchestration_mode`.",
        "inference-service",
    ),
    FieldRule(
        "task_type",
        H,
        (CHAT,),
        'With `model: "auto"`: the catalog role that answers (`code` → `coder`, or a role '
        "name); the first loaded catalog model with it (README, Model catalog and presets).",
        "inference-service",
    ),
    # --- accepted, no effect ----------------------------------------------
    FieldRule("user", N, BOTH, "Not used: no abuse tracking here."),
    FieldRule("safety_identifier", N, (CHAT,), "Not used: no abuse tracking here."),
    FieldRule("metadata", N, (CHAT,), "Not stored: nothing is stored here."),
    FieldRule("store", N, (CHAT,), "Nothing is stored; there is no stored-completions API."),
    FieldRule(
        "prompt_cache_key",
        N,
        (CHAT,),
        "Prompt prefixes are cached per model on their own "
        "(`usage.prompt_tokens_details.cached_tokens`).",
    ),
    FieldRule("prompt_cache_retention", N, (CHAT,), "As `prompt_cache_key`."),
    FieldRule("prompt_cache_options", N, (CHAT,), "As `prompt_cache_key`."),
    FieldRule(
        "prediction",
        N,
        (CHAT,),
        "Predicted Outputs only speed OpenAI up; the answer is the same without it.",
    ),
    # --- refused unless default -------------------------------------------
    FieldRule(
        "audio", R, (CHAT,), "The models here answer in text only; there is no audio output."
    ),
    FieldRule(
        "modalities",
        R,
        (CHAT,),
        'Only `["text"]`: the models here answer in text only.',
        allows=lambda v: v is None or "audio" not in v,
    ),
    FieldRule(
        "functions",
        R,
        (CHAT,),
        "Deprecated by OpenAI and not supported; pass the functions as `tools`.",
        allows=lambda v: not v,
    ),
    FieldRule(
        "function_call",
        R,
        (CHAT,),
        'Deprecated; use `tool_choice`. Only `"none"`/`"auto"`, which ask for nothing here.',
        allows=lambda v: v is None or isinstance(v, str),
    ),
    FieldRule(
        "moderation",
        R,
        (CHAT,),
        "No moderation model runs here; nothing would be scored or blocked.",
    ),
    FieldRule(
        "verbosity",
        R,
        (CHAT,),
        'Only `"medium"` (the default): the models here have no verbosity control.',
        allows=lambda v: v in (None, "medium"),
    ),
    FieldRule("web_search_options", R, (CHAT,), "The models here cannot search the web."),
    FieldRule(
        "echo",
        R,
        (COMPLETIONS,),
        "Only `false`: echoing the prompt is not supported yet.",
        allows=lambda v: not v,
    ),
    FieldRule(
        "suffix",
        R,
        (COMPLETIONS,),
        "Fill-in-the-middle (text after the insertion) is not supported yet.",
        allows=lambda v: not v,
    ),
    FieldRule(
        "best_of",
        R,
        (COMPLETIONS,),
        "Only 1: choosing the best of several is not supported.",
        allows=lambda v: v in (None, 1),
    ),
)

RULES: dict[str, FieldRule] = {rule.name: rule for rule in FIELDS}


def _refused(api: str) -> tuple[FieldRule, ...]:
    return tuple(r for r in FIELDS if r.handling is Handling.REFUSED and api in r.apis)


_REFUSED_CHAT = _refused(CHAT)
_REFUSED_COMPLETIONS = _refused(COMPLETIONS)


def check_fields(request: ChatCompletionRequest | CompletionRequest) -> None:
    """Raise a 400 naming the first REFUSED field that is set, or an
    extension used in a way that would otherwise be ignored."""
    chat = isinstance(request, ChatCompletionRequest)
    for rule in _REFUSED_CHAT if chat else _REFUSED_COMPLETIONS:
        value = getattr(request, rule.name)
        if not rule.allows(value):
            raise InvalidRequest(f"Unsupported value for {rule.name}: {rule.note}", param=rule.name)
    orchestrated = isinstance(request, ChatCompletionRequest) and request.orchestration_mode
    if chat and getattr(request, "orchestration", None) is not None and not orchestrated:
        raise InvalidRequest("orchestration needs orchestration_mode", param="orchestration")
    fmt = request.response_format if isinstance(request, ChatCompletionRequest) else None
    if fmt is not None and fmt.schema is not None and fmt.type != "json_object":
        raise InvalidRequest(
            'response_format.schema goes with type "json_object"; '
            'for "json_schema" put it in response_format.json_schema.schema',
            param="response_format.schema",
        )
    limit = (
        (request.max_completion_tokens or request.max_tokens)
        if isinstance(request, ChatCompletionRequest)
        else request.token_limit
    )
    if limit is not None and request.min_tokens > limit:
        raise InvalidRequest(
            f"min_tokens ({request.min_tokens}) is more than the token limit ({limit})",
            param="min_tokens",
        )


# --- unknown fields --------------------------------------------------------

# Field names already logged, process-wide; bounded so that a client sending
# ever new names cannot grow it or flood the log.
MAX_LOGGED_NAMES = 256
_logged: set[str] = set()


def warn_unknown_fields(keys: Iterable[str], known: Container[str], route: str) -> None:
    """Log each of ``keys`` that is not in ``known`` at WARNING, once per
    field name for the whole process."""
    for key in keys:
        if key in known or key in _logged:
            continue
        if len(_logged) >= MAX_LOGGED_NAMES:
            return
        _logged.add(key)
        log.warning(
            "%s: ignoring unknown request field %r (logged once per field name)",
            route,
            key[:100],
        )
        if len(_logged) == MAX_LOGGED_NAMES:
            log.warning("%d unknown field names logged; no more will be", MAX_LOGGED_NAMES)


def reset_logged_fields() -> None:
    """Forget which unknown names were logged (for tests)."""
    _logged.clear()


# --- decoding --------------------------------------------------------------


class _StrictChat(ChatCompletionRequest, forbid_unknown_fields=True):
    """``ChatCompletionRequest`` that fails on an unknown top-level field."""


class _StrictCompletion(CompletionRequest, forbid_unknown_fields=True):
    """``CompletionRequest`` that fails on an unknown top-level field."""


@dataclass(frozen=True)
class _Policy:
    strict: msgspec.json.Decoder[Any]
    lenient: msgspec.json.Decoder[Any]
    known: frozenset[str]


_POLICIES: dict[type, _Policy] = {
    t: _Policy(msgspec.json.Decoder(s), msgspec.json.Decoder(t), frozenset(t.__struct_fields__))
    for t, s in ((ChatCompletionRequest, _StrictChat), (CompletionRequest, _StrictCompletion))
}
_KEYS = msgspec.json.Decoder(dict[str, msgspec.Raw])
_UNKNOWN = "Object contains unknown field"


def decode_request(body: bytes | str, body_type: type[T], route: str) -> T:
    """``body`` decoded into ``body_type``. For chat and completions requests
    also: unknown top-level fields logged (once per name), REFUSED fields
    checked. Raises msgspec's errors as ``msgspec.json.decode`` does, and
    ``InvalidRequest`` for a refused field. The result may be a subclass of
    ``body_type`` (the strict twin); ``isinstance`` holds."""
    policy = _POLICIES.get(body_type)
    if policy is None:
        return msgspec.json.decode(body, type=body_type)
    try:
        request = policy.strict.decode(body)
    except msgspec.ValidationError as exc:
        if not str(exc).startswith(_UNKNOWN):
            raise
        warn_unknown_fields(_KEYS.decode(body), policy.known, route)
        request = policy.lenient.decode(body)
    check_fields(request)
    return cast(T, request)


def markdown_table() -> str:
    """The table for users, as Markdown."""
    lines = [
        "| field | endpoints | handling | notes |",
        "|---|---|---|---|",
    ]
    for rule in FIELDS:
        origin = "" if rule.origin == "OpenAI" else f" (extension: {rule.origin})"
        apis = ", ".join(rule.apis)
        lines.append(f"| `{rule.name}` | {apis} | {rule.handling.value}{origin} | {rule.note} |")
    return "\n".join(lines)
