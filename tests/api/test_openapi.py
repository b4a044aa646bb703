"""The OpenAPI document covers every route and the server keeps to it
(schemathesis fuzzing the running server on the embedded models)."""

from __future__ import annotations

import re
from typing import Any, cast

import schemathesis
from hypothesis import HealthCheck, given, settings
from jsonschema import Draft202012Validator
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


def _schema_of(document: dict[str, Any], path: str, status: str) -> dict[str, Any]:
    answer = document["paths"][path]["post"]["responses"][status]
    return answer["content"]["application/json"]["schema"]


def _conforms(document: dict[str, Any], schema: dict[str, Any], body: Any) -> bool:
    """Whether ``body`` keeps to ``schema``, its refs resolved in ``document``."""
    root = {**schema, "components": document["components"]}
    return Draft202012Validator(root).is_valid(body)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def test_chat_request_documents_orchestration(server: Server) -> None:
    schemas = server.client.get("/openapi.json").json()["components"]["schemas"]
    fields = schemas["ChatCompletionRequest"]["properties"]
    (modes, null) = fields["orchestration_mode"]["anyOf"]
    assert sorted(modes["enum"]) == ["critique", "debate", "ensemble", "pipeline", "single"]
    assert null == {"type": "null"}
    assert _ref("OrchestrationIn") in fields["orchestration"]["anyOf"]
    roles = schemas["OrchestrationIn"]["properties"]
    assert set(roles) == {"critique", "debate", "ensemble", "pipeline", "stream_stages"}
    assert roles["stream_stages"] == {"type": "boolean", "default": False}
    assert roles["debate"] == _ref("DebateRoles")
    assert set(schemas["DebateRoles"]["properties"]) == {"debaters", "judge", "rounds"}
    assert schemas["PipelineRoles"]["properties"]["stages"]["anyOf"][0]["maxItems"] == 8
    assert schemas["OrchestrationIn"]["additionalProperties"] is False


def test_chat_response_documents_orchestration(server: Server) -> None:
    document = server.client.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    answer = _schema_of(document, "/v1/chat/completions", "200")
    assert answer == {"anyOf": [_ref("ChatCompletion"), _ref("OrchestratedCompletion")]}
    orchestrated = schemas["OrchestratedCompletion"]
    assert orchestrated["properties"]["orchestration"] == _ref("OrchestrationOut")
    assert "orchestration" in orchestrated["required"]
    assert "orchestration" not in schemas["ChatCompletion"]["properties"]
    run = schemas["OrchestrationOut"]
    four = ["mode", "models_used", "total_inference_time_ms", "steps"]
    assert set(four) <= set(run["properties"]) and run["required"] == four
    assert run["properties"]["steps"]["items"] == _ref("StepOut")
    # A real orchestrated answer keeps to the orchestrated branch of the document.
    body = {
        "model": "smollm2-135m",
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 2,
        "orchestration_mode": "single",
    }
    r = server.client.post("/v1/chat/completions", json=body, timeout=120)
    assert r.status_code == 200, r.text
    assert _conforms(document, _ref("OrchestratedCompletion"), r.json())
    assert _conforms(document, answer, r.json())


def test_anthropic_routes_document_anthropic_errors(server: Server) -> None:
    document = server.client.get("/openapi.json").json()
    error = document["components"]["schemas"]["AnthropicError"]
    assert error["properties"]["type"] == {"enum": ["error"]}
    assert error["properties"]["error"] == _ref("ErrorOut")
    assert set(error["required"]) == {"type", "error"}
    for path, ops in document["paths"].items():
        for method, op in ops.items():
            shape = "AnthropicError" if path.startswith("/v1/messages") else "ErrorBody"
            if path.startswith("/api/model/"):
                continue  # ForgeLLM's own error on its documented statuses
            for status in ("400", "404", "500"):  # (some routes answer 503 themselves)
                schema = op["responses"][status]["content"]["application/json"]["schema"]
                assert schema == _ref(shape), (method, path, status)
    # And the errors the server sends keep to what the document says.
    for path, shape, other in (
        ("/v1/messages", "AnthropicError", "ErrorBody"),
        ("/v1/messages/count_tokens", "AnthropicError", "ErrorBody"),
        ("/v1/chat/completions", "ErrorBody", "AnthropicError"),
    ):
        r = server.client.post(path, json={"model": "smollm2-135m", "messages": "x"})
        assert r.status_code == 400, r.text
        assert _schema_of(document, path, "400") == _ref(shape)
        assert _conforms(document, _ref(shape), r.json()), (path, r.json())
        assert not _conforms(document, _ref(other), r.json()), path


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
