"""Check a model's load options against the engine that will serve it.

Anything a model sets that its engine cannot honour is refused with a 400
naming the options: never silently ignored. What each engine honours, the
parser names and the defaults are the catalog's (shared with the handlers).
"""

from __future__ import annotations

from bodega.errors import InvalidRequest
from bodega.settings import ModelSpec
from catalog.engines import SUPPORTED
from catalog.engines import resolve_engine as _resolve_engine
from catalog.options import unhonoured
from catalog.parsers import REASONING_PARSERS, TOOL_CALL_PARSERS


def resolve_engine(spec: ModelSpec) -> str:
    """The engine that will serve ``spec`` (``auto`` decided by its files)."""
    return _resolve_engine(spec.model_type, spec.engine, spec.model_path)


def check_supported(spec: ModelSpec) -> str:
    """The engine for ``spec``; InvalidRequest when it asks for what cannot be served."""
    engines = SUPPORTED.get(spec.model_type)
    if engines is None:
        raise InvalidRequest(
            f"model_type {spec.model_type!r} is not supported yet; supported: "
            + ", ".join(sorted(SUPPORTED)),
            param="model_type",
        )
    engine = resolve_engine(spec)
    honoured = engines.get(engine)
    if honoured is None:
        raise InvalidRequest(
            f"engine {engine!r} is not available for model_type {spec.model_type!r}; "
            "available: auto, " + ", ".join(sorted(engines)),
            param="engine",
        )
    refused = unhonoured(spec, honoured)
    if refused:
        raise InvalidRequest(
            f"engine {engine!r} cannot honour {', '.join(refused)} for "
            f"model_type {spec.model_type!r} yet",
            param=refused[0],
        )
    if spec.lora_scales and len(spec.lora_scales) != len(spec.lora_paths or []):
        raise InvalidRequest(
            "lora_scales needs one scale per lora_paths entry", param="lora_scales"
        )
    _check_parsers(spec)
    if spec.num_draft_tokens is not None and not spec.draft_model_path:
        raise InvalidRequest("num_draft_tokens needs draft_model_path", param="num_draft_tokens")
    return engine


def _check_parsers(spec: ModelSpec) -> None:
    """Unknown parser names are a 400 at load, not a failure at the first request."""
    for param, value, known in (
        ("tool_call_parser", spec.tool_call_parser, TOOL_CALL_PARSERS),
        ("reasoning_parser", spec.reasoning_parser, REASONING_PARSERS),
    ):
        if value is not None and value not in known:
            raise InvalidRequest(
                f"unknown {param} {value!r}; known: {', '.join(sorted(known))}", param=param
            )
