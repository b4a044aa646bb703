"""The OpenAPI document covers every route and the server keeps to it
(schemathesis fuzzing the running server on the embedded models)."""

from __future__ import annotations

import re
from typing import Any, cast

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from bodega.app import create_app
from bodega.registry.registry import Registry
from bodega.settings import ServerSection, Settings
from tests.helpers import Server


def test_every_route_is_documented(server: Server) -> None:
    document = server.client.get("/openapi.json").json()
    assert document["openapi"] == "3.1.0"
    assert "ErrorBody" in document["components"]["schemas"]
    documented = {
        (method.upper(), path) for path, ops in document["paths"].items() for method in ops
    }
    app = create_app(Settings(server=ServerSection(), models=[]), cast(Registry, _NoRegistry()))
    served = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(("/static", "/docs", "/openapi.json")):
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        served |= {(m, path) for m in rule.methods or () if m not in ("HEAD", "OPTIONS")}
    assert served == documented


class _NoRegistry:
    metrics = None
    models: list[object] = []


def test_swagger_ui_is_served_without_a_cdn(server: Server) -> None:
    page = server.client.get("/docs")
    assert page.status_code == 200 and "SwaggerUIBundle" in page.text
    assert "http" not in page.text.replace("http-equiv", "")  # nothing from elsewhere
    script = server.client.get("/docs/static/swagger-ui-bundle.js")
    assert script.status_code == 200 and len(script.content) > 100_000
    assert server.client.get("/docs/static/swagger-ui.css").status_code == 200


# The cheap operations: model listing, status, queue, tools, embeddings and
# rerank. Generation, loads and downloads would fuzz for hours on two cores.
CHEAP = r"^/(health|v1/(models|queue|tools$|embeddings|rerank|admin/loaded-models))"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def test_the_server_keeps_to_its_document(server: Server) -> None:
    # schemathesis' own pytest plugin does not run under pytest 9: its Python
    # API drives hypothesis here instead.
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json").include(path_regex=CHEAP)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=25,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            case.call_and_validate(checks=CHECKS)

        run()
