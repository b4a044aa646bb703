"""The LLM Service docs' tiers: a request's ``model`` naming a tier, or a
name whose pattern points at one, served by the model the tier maps to.

Consulted by ``Registry.find`` only when no model has the exact id (and a
load on demand did not bring one), so ids always win over tier names.
"""

from __future__ import annotations

import re
from collections.abc import Container
from fnmatch import fnmatchcase

from bodega.errors import BodegaError
from bodega.settings import TiersSection

TIER_NAMES = ("light", "medium", "heavy", "embedding", "reranker")
# Checked in order: "bge-reranker-v2" is a reranker before it is a bge.
PATTERNS = (
    ("reranker", ("*rerank*", "*cross-encoder*")),
    ("embedding", ("*embed*", "*bge*", "*e5*")),
)
# Sizes in billions of parameters up to which a tier fits; above: heavy.
SIZE_TIERS = ((4.0, "light"), (14.0, "medium"))
# "0.5b", "7b", "8x7b" (experts x size) not followed by a letter or digit.
_SIZE = re.compile(r"(?<![\d.])(?:(\d+)x)?(\d+(?:\.\d+)?)b(?![a-z0-9])")


class NoTierModel(BodegaError):
    """A request named a tier that maps to no loaded model (the docs' error)."""

    status = 404
    type = "model_error"


def size_tier(name: str) -> str | None:
    """The tier a size indicator in ``name`` points at (``0.5b`` light,
    ``7b`` medium, ``70b`` heavy), or None without one."""
    match = _SIZE.search(name.lower())
    if match is None:
        return None
    billions = float(match.group(2)) * int(match.group(1) or 1)
    return next((tier for bound, tier in SIZE_TIERS if billions <= bound), "heavy")


def pattern_tier(name: str) -> str | None:
    """The tier ``name``'s pattern routes to (embedding, reranker, or by size)."""
    lowered = name.lower()
    for tier, patterns in PATTERNS:
        if any(fnmatchcase(lowered, p) for p in patterns):
            return tier
    return size_tier(lowered)


def tier_target(name: str, tiers: TiersSection) -> str | None:
    """The model id the tier ``name`` names maps to (None: not a tier, or empty)."""
    lowered = name.lower()
    return getattr(tiers, lowered) if lowered in TIER_NAMES else None


def tier_alias(name: str, tiers: TiersSection) -> str | None:
    """The model id in ``name`` written as the docs' list ids are, ``tier/id``
    (``light/qwen-0.5b``), when that tier maps to that id; else None."""
    tier, slash, model_id = name.partition("/")
    return model_id if slash and tier_target(tier, tiers) == model_id else None


def tiers_of(model_id: str, tiers: TiersSection) -> list[str]:
    """The tiers that map to ``model_id``, in the docs' order."""
    return [tier for tier in TIER_NAMES if getattr(tiers, tier) == model_id]


def route(name: str, tiers: TiersSection, models: Container[str]) -> str | None:
    """The id of the model that serves ``name``, or None when tiers do not
    apply. A tier name whose model is not loaded is the docs' 404
    "No models available for tier: ..."; a pattern whose tier has no loaded
    model routes nowhere (the caller's usual "not loaded" answer)."""
    lowered = name.lower()
    if lowered in TIER_NAMES:
        target = tier_target(name, tiers)
        if target is None or target not in models:
            raise NoTierModel(f"No models available for tier: {lowered}", param="model")
        return str(target)
    tier = pattern_tier(name)
    target = getattr(tiers, tier) if tier is not None else None
    return str(target) if target is not None and target in models else None
