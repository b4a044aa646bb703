"""``HOST`` / ``PORT`` from the environment (the LLM Service docs' variables)."""

from __future__ import annotations

import pytest

from bodega.settings import ServerSection, server_with_env


def test_an_address_is_taken() -> None:
    server = server_with_env(ServerSection(), {"HOST": "0.0.0.0", "PORT": "8080"})
    assert (server.host, server.port) == ("0.0.0.0", 8080)


def test_a_machine_name_is_ignored(caplog: pytest.LogCaptureFixture) -> None:
    # zsh exports HOST as the machine's name: never bind to it by surprise.
    server = server_with_env(ServerSection(), {"HOST": "my-laptop.local"})
    assert server.host == ServerSection().host
    assert "ignoring HOST" in caplog.text


def test_a_bad_port_names_the_variable() -> None:
    with pytest.raises(ValueError, match="PORT"):
        server_with_env(ServerSection(), {"PORT": "http"})
