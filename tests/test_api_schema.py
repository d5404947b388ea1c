"""The OpenAPI document drives a fuzz run (schemathesis): on the blade's small tenant, with an administrator key,
every operation answers without a 5xx, with a status code, a content type and a body the document declares.
Bounded by max_examples so that the suite stays quick.

The document is the one /api/schema/ serves (a test below compares them); it is generated when the module loads
because schemathesis' pytest fixture loader does not run under this pytest."""

from __future__ import annotations

import json

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from .api_client import ApiClient, api_key

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
DOCUMENT = json.loads(json.dumps(SchemaGenerator().get_schema(request=None, public=True), default=str))
schema = schemathesis.openapi.from_dict(DOCUMENT)


@pytest.fixture
def admin_key(blade_tenant) -> str:
    return api_key("administrator", "schemathesis")


@pytest.fixture
def wsgi_app():
    """The portal's WSGI application, called in the test's own transaction: as Django's test client does, it
    keeps the database connection open across requests (a request's end otherwise closes it)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield get_wsgi_application()
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_every_operation_answers_as_its_schema_says(case, admin_key, wsgi_app):
    case.call_and_validate(app=wsgi_app, headers={"Authorization": f"Bearer {admin_key}"}, checks=CHECKS)


def test_the_fuzzed_document_is_the_one_the_portal_serves(admin_key):
    served = ApiClient(admin_key).api_get("/api/schema/")
    assert served.status_code == 200 and served["Content-Type"].startswith("application/json")
    assert served.json() == DOCUMENT
    assert set(DOCUMENT["paths"]) == {
        "/api/v1/devices",
        "/api/v1/devices/{device_id}",
        "/api/v1/devices/actions/{action}",
        "/api/v1/discoveries",
        "/api/v1/discoveries/{id}",
        "/api/v1/readiness-reports",
        "/api/v1/registrations",
    }


def test_the_reference_page_keeps_the_content_security_policy(alice):
    """Swagger UI from the portal's own static files: no inline script or style, nothing from another site."""
    import re

    from .portal_client import signed_in

    client = signed_in(alice)
    page = client.get("/api/docs/")
    html = page.content.decode()
    policy = page["Content-Security-Policy"]
    assert page.status_code == 200 and "script-src 'self'" in policy and "style-src 'self'" in policy
    assert "<style" not in html and not re.search(r"<script(?![^>]*\bsrc=)", html)
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources and all(s.startswith("/") for s in sources), sources
    script = next(s for s in sources if "script=" in s)
    answer = client.get(script)
    assert answer.status_code == 200 and "SwaggerUIBundle" in answer.content.decode()
    from django.contrib.staticfiles import finders

    bundle = next(s for s in sources if s.endswith("swagger-ui-bundle.js"))
    assert finders.find(
        bundle.removeprefix("/static/")
    )  # shipped by the sidecar, collected with the portal's
