"""The OpenAPI document, Swagger UI without a CDN, and property-based API checks."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portal.admin import service


def test_openapi_document_is_served_and_describes_the_api(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    assert "/api/v1/operations" in spec["paths"]
    assert "/api/v1/operations/{operation_id}/log" in spec["paths"]
    post = spec["paths"]["/api/v1/operations"]["post"]
    assert "202" in post["responses"]
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert set(spec["components"]["schemas"]["Error"]["properties"]) == {
        "code",
        "message",
        "details",
    }


def test_swagger_ui_uses_vendored_assets(client):
    page = client.get("/api/docs").get_data(as_text=True)
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in page
    assert "cdn" not in page.lower()
    with client.get("/static/vendor/swagger-ui/swagger-ui-bundle.js") as asset:
        assert asset.status_code == 200


def test_openapi_can_be_written_without_a_server(app, tmp_path):
    target = tmp_path / "openapi.json"
    result = app.test_cli_runner().invoke(args=["openapi", "write", str(target)])
    assert result.exit_code == 0, result.output
    assert '"/api/v1/operations"' in target.read_text()


# schemathesis' positive_data_acceptance expects a 2xx for every schema-valid body, but some
# rules cannot be said in JSON Schema (a URL that parses, a PEM key, no NUL characters, fields
# that go together): those are answered 422 naming the field, which check_refusal_names_a_field
# asserts instead. Every other built-in check runs.
EXAMPLES = 1500


def check_refusal_names_a_field(response) -> None:
    if response.status_code == 422:
        body = response.json()
        assert body["code"] == "validation_error" and body["message"], body
        assert body["details"], f"a 422 must name what was wrong: {body}"


@pytest.mark.slow
def test_generated_requests_pass_every_check_of_the_openapi_document(
    queue_only_app, loopback_only_network
):
    """Valid and invalid requests generated from the OpenAPI document, checked like
    `schemathesis run --checks all`: no 5xx, statuses, content types, headers and bodies as
    documented, invalid input refused, authentication never ignored."""
    from schemathesis.specs.openapi.checks import positive_data_acceptance

    user = service.create_user("fuzz-admin", "correct horse battery", "admin")
    _, token = service.create_token(user, "fuzz", 1)
    admin_headers = {"Authorization": f"Bearer {token}"}
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", queue_only_app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 100
    modes = [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]
    sent = []

    @given(data=st.data())
    @settings(
        max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    def check(data: st.DataObject) -> None:
        operation = data.draw(st.sampled_from(operations))
        case = data.draw(operation.as_strategy(generation_mode=data.draw(st.sampled_from(modes))))
        if isinstance(case.query, dict) and "follow" in case.query:
            case.query["follow"] = "false"  # no endless streams
        sent.append(case.operation.label)
        response = case.call_and_validate(
            headers=admin_headers, excluded_checks=[positive_data_acceptance]
        )
        check_refusal_names_a_field(response)

    check()
    assert len(sent) >= 1000
    assert len(set(sent)) >= 0.9 * len(operations)  # the requests reached (nearly) every one


def test_the_network_guard_refuses_everything_but_loopback(loopback_only_network):
    import socket

    with pytest.raises(socket.gaierror):
        socket.getaddrinfo("registry.example.com", 443)
    with socket.socket() as sock, pytest.raises(ConnectionRefusedError):
        sock.connect(("10.1.2.3", 5000))  # refused before any packet leaves
    assert socket.getaddrinfo("localhost", 80)
