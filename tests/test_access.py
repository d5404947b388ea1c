"""Every URL the portal routes, read from the URL resolver so that a new view is walked without editing this test:
anonymous users go to sign-in (401 for the API), a signed-in user without a role gets 403, and a method the view
does not take gets 405."""

from __future__ import annotations

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from .portal_client import PortalClient, signed_in

pytestmark = pytest.mark.django_db

# Pages anyone may open: signing in and out, the no-access page itself, and what only redirects to another page.
PUBLIC = {
    "",
    "devices/",
    "accounts/login/",
    "accounts/logout/",
    "accounts/no-access/",
    "accounts/entra/start/",
    "accounts/entra/callback/",
    "accounts/entra/simulated-sign-in/",
}
SAMPLES = {
    "tab": "ready",
    "action": "exclude",
    "pk": "1",
    "device_id": "1",
}  # a value for each path parameter
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def routes(patterns=None, prefix: str = "") -> list[str]:
    """Every routed path, parameters filled with SAMPLES."""
    found: list[str] = []
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            found.extend(routes(pattern.url_patterns, route))
        elif isinstance(pattern, URLPattern):
            found.append(re.sub(r"<(?:\w+:)?(\w+)>", lambda m: SAMPLES[m.group(1)], route))
    return found


PROTECTED = sorted(path for path in routes() if path not in PUBLIC)


def test_the_walk_sees_the_portals_pages():
    assert {
        "devices/ready/",
        "devices/discover/",
        "accounts/audit/",
        "devices/ready/export.csv",
        "devices/readiness-script/",
        "devices/readiness-script/download/",
        "devices/readiness-script/deploy/",
    } <= set(PROTECTED)


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "devices/readiness-script/", 200),
        ("GET", "devices/readiness-script/download/", 200),
        ("POST", "devices/readiness-script/deploy/", 403),
    ],
)
def test_a_reader_sees_the_readiness_script_but_cannot_deploy_it(bob, method, path, status):
    assert call(signed_in(bob), method, path).status_code == status


def call(client: PortalClient, method: str, path: str):
    if method == "GET":
        return client.get(f"/{path}")
    # The CSRF token as a browser form or htmx sends it: the method's own refusal, not CSRF's, is under test.
    return client.generic(method, f"/{path}", headers={"X-CSRFToken": client.csrf_token()})


def taken_methods(admin: PortalClient, path: str) -> list[str]:
    return [method for method in ("GET", "POST") if call(admin, method, path).status_code != 405]


@pytest.mark.parametrize("path", PROTECTED)
def test_anonymous_users_are_sent_to_sign_in(path, alice):
    for method in taken_methods(signed_in(alice), path):
        response = call(PortalClient(), method, path)
        if path.startswith("api/"):
            assert response.status_code == 401, (method, path)
        else:
            assert response.status_code == 302, (method, path, response.status_code)
            assert response["Location"].startswith("/accounts/login/?next="), (method, path)


@pytest.mark.parametrize("path", PROTECTED)
def test_a_user_without_a_role_gets_403(path, alice, charlie):
    client = signed_in(charlie)
    for method in taken_methods(signed_in(alice), path):
        assert call(client, method, path).status_code == 403, (method, path)


@pytest.mark.parametrize("path", sorted(routes()))
def test_a_method_the_view_does_not_take_gets_405(path, alice):
    admin = signed_in(alice)
    taken = taken_methods(admin, path)
    assert taken, f"/{path} takes neither GET nor POST"
    for method in METHODS:
        if method not in taken:
            assert call(admin, method, path).status_code == 405, (method, path)
