"""bodega.registry.tiers: which model a tier or a name pattern routes to."""

from __future__ import annotations

import pytest

from bodega.registry.tiers import NoTierModel, pattern_tier, route, size_tier, tier_target
from bodega.settings import TiersSection

TIERS = TiersSection(light="small", medium="mid", embedding="emb", reranker="rr")
LOADED = {"small", "mid", "emb", "rr"}


@pytest.mark.parametrize(
    ("name", "tier"),
    [
        ("BAAI/bge-m3", "embedding"),
        ("nomic-embed-text", "embedding"),
        ("intfloat/multilingual-e5-small", "embedding"),
        ("bge-reranker-v2-m3", "reranker"),
        ("cross-encoder/ms-marco-MiniLM-L-6-v2", "reranker"),
        ("qwen2.5-0.5b-instruct", "light"),
        ("llama-3.1-8b", "medium"),
        ("Llama-3.3-70B-Instruct", "heavy"),
        ("mixtral-8x7b", "heavy"),
        ("gpt-4o", None),
        ("smollm2-135m", None),
    ],
)
def test_pattern_tier(name: str, tier: str | None) -> None:
    assert pattern_tier(name) == tier


def test_size_tier_bounds() -> None:
    assert size_tier("m-4b") == "light" and size_tier("m-14b") == "medium"
    assert size_tier("m-15b") == "heavy" and size_tier("m-1.5bit") is None


def test_tier_names_route_to_their_model() -> None:
    assert route("light", TIERS, LOADED) == "small"
    assert route("Medium", TIERS, LOADED) == "mid"
    assert route("reranker", TIERS, LOADED) == "rr"


def test_an_empty_or_unloaded_tier_is_the_docs_error() -> None:
    with pytest.raises(NoTierModel, match=r"^No models available for tier: heavy$") as caught:
        route("heavy", TIERS, LOADED)
    assert caught.value.status == 404 and caught.value.type == "model_error"
    with pytest.raises(NoTierModel, match="tier: light"):
        route("light", TIERS, LOADED - {"small"})


def test_patterns_route_only_to_a_loaded_tier_model() -> None:
    assert route("my-bge-thing", TIERS, LOADED) == "emb"
    assert route("qwen-7b", TIERS, LOADED) == "mid"
    assert route("qwen-72b", TIERS, LOADED) is None  # heavy is empty
    assert route("my-bge-thing", TIERS, LOADED - {"emb"}) is None
    assert route("anything", TIERS, LOADED) is None
    assert route("my-bge-thing", TiersSection(), LOADED) is None


def test_tier_target() -> None:
    assert tier_target("Light", TIERS) == "small"
    assert tier_target("heavy", TIERS) is None and tier_target("small", TIERS) is None
