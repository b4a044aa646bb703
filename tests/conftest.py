"""Shared fixtures: a real server process on the embedded model."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers import Server, start_server, stop_server


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    """One server on the embedded default model for the whole session."""
    srv = start_server()
    yield srv
    stop_server(srv)
