"""The provider stand-in for tool tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.tools.providers import FakeProviders


@pytest.fixture(scope="session")
def providers() -> Iterator[FakeProviders]:
    """One stand-in provider server for the session; each test starts in ``ok`` mode."""
    with FakeProviders() as fake:
        yield fake


@pytest.fixture(autouse=True)
def _ok_mode(request: pytest.FixtureRequest) -> None:
    if "providers" in request.fixturenames:
        request.getfixturevalue("providers").mode = "ok"
