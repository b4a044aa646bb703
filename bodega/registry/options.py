"""Which load-model options each model type and engine honours today.

Anything a model sets that its engine cannot honour is refused with a 400
naming the options: never silently ignored.
"""

from __future__ import annotations

from bodega.errors import InvalidRequest
from bodega.settings import ModelSpec

# Options with an effect only for some engines; each is "set" when it differs
# from its default.
_ENGINE_SPECIFIC = (
    "quantize",
    "config_name",
    "lora_paths",
    "lora_scales",
    "disable_auto_resize",
    "enable_auto_tool_choice",
    "tool_call_parser",
    "reasoning_parser",
    "trust_remote_code",
    "draft_model_path",
    "num_draft_tokens",
)

# model_type -> engine -> the engine-specific options it honours.
SUPPORTED: dict[str, dict[str, frozenset[str]]] = {
    "lm": {"llamacpp": frozenset(), "auto": frozenset()},
}


def check_supported(spec: ModelSpec) -> None:
    """Raise InvalidRequest when ``spec`` asks for what cannot be served yet."""
    engines = SUPPORTED.get(spec.model_type)
    if engines is None:
        raise InvalidRequest(
            f"model_type {spec.model_type!r} is not supported yet; supported: "
            + ", ".join(sorted(SUPPORTED)),
            param="model_type",
        )
    honoured = engines.get(spec.engine)
    if honoured is None:
        raise InvalidRequest(
            f"engine {spec.engine!r} is not available for model_type {spec.model_type!r}; "
            "available: " + ", ".join(sorted(engines)),
            param="engine",
        )
    defaults = ModelSpec(model_path="-")
    refused = [
        name
        for name in _ENGINE_SPECIFIC
        if getattr(spec, name) != getattr(defaults, name) and name not in honoured
    ]
    if refused:
        raise InvalidRequest(
            f"engine {spec.engine!r} cannot honour {', '.join(refused)} for "
            f"model_type {spec.model_type!r} yet",
            param=refused[0],
        )
