"""Who plays which part: config.yaml's roles, the request's, the request's
model; and how an ensemble's aggregator is read."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from bodega.orchestration.config import OrchestrationIn, OrchestrationSection, cast_of
from bodega.orchestration.runner import decide
from bodega.settings import ConfigError, load_config_file


def names(parts: dict[str, list[object]]) -> dict[str, list[str]]:
    return {key: [p.model for p in ps] for key, ps in parts.items()}  # type: ignore[attr-defined]


def test_config_roles_then_request_roles_then_the_model(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "orchestration:\n"
        "  critique: {drafter: m1, critic: m2}\n"
        "  debate: {debaters: [m1, m2], judge: m3, rounds: 3}\n"
        "  ensemble: {members: [m1, m2, m3], aggregator: m4}\n"
        "  pipeline: {stages: [m1, m2, m3]}\n"
    )
    config = load_config_file(str(path)).orchestration
    assert names(cast_of("critique", "x", config, None).parts) == {
        "drafter": ["m1"],
        "critic": ["m2"],
    }
    request = msgspec.convert({"critique": {"critic": "r"}}, OrchestrationIn)
    cast = cast_of("critique", "x", config, request)
    assert names(cast.parts) == {"drafter": ["m1"], "critic": ["r"]}
    assert cast.parts["critic"][0].param == "orchestration.critique.critic"
    debate = cast_of("debate", "x", config, None)
    assert debate.rounds == 3 and names(debate.parts)["debaters"] == ["m1", "m2"]
    assert names(cast_of("pipeline", "x", config, None).parts) == {"stages": ["m1", "m2", "m3"]}
    empty = cast_of("ensemble", "x", OrchestrationSection(), None)
    assert names(empty.parts) == {"members": ["x", "x"], "aggregator": ["x"]}
    assert empty.parts["aggregator"][0].param == "model"
    assert cast_of("debate", "x", OrchestrationSection(), None).rounds == 2


def test_bad_config_roles_fail_the_config(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("orchestration:\n  debate: {rounds: 0}\n")
    with pytest.raises(ConfigError):
        load_config_file(str(path))


def test_the_aggregator_picks_or_merges() -> None:
    answers, ids = ["apple", "pear"], ["a", "b"]
    decision, text = decide("PICK 2", answers, ids)
    assert (decision.kind, decision.member, decision.model, text) == ("picked", 1, "b", "pear")
    decision, text = decide("MERGE\nApples and pears.", answers, ids)
    assert (decision.kind, text) == ("merged", "Apples and pears.")
    decision, text = decide("PICK 7", answers, ids)  # no such candidate: its text stands
    assert (decision.kind, text) == ("merged", "PICK 7")
