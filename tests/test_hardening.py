"""Hardening: security headers, a CSP without inline script, CSRF on htmx requests, no secret in pages, check --deploy."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from autopatch_portal.tenant.connection import SIMULATED_CLIENT_SECRET

from .conftest import PASSWORD
from .portal_client import PortalClient, signed_in

pytestmark = pytest.mark.django_db
REPO = Path(__file__).resolve().parent.parent


def pages(client) -> list:
    return [
        client.get(path)
        for path in (
            "/devices/ready/",
            "/accounts/audit/",
            "/devices/registration-group/",
            "/devices/dual-state/",
        )
    ]


def test_every_page_sends_the_security_headers(alice):
    for response in [PortalClient().get("/accounts/login/"), *pages(signed_in(alice))]:
        assert response.status_code == 200, response.request["PATH_INFO"]
        csp = response["Content-Security-Policy"]
        directives = dict(part.strip().split(" ", 1) for part in csp.split(";") if part.strip())
        assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
        assert directives["frame-ancestors"] == "'none'" and directives["object-src"] == "'none'"
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert response["X-Frame-Options"] == "DENY"
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["Referrer-Policy"] == "same-origin"


def test_no_page_has_inline_script_or_style(alice):
    for response in [PortalClient().get("/accounts/login/"), *pages(signed_in(alice))]:
        html = response.content.decode()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), response.request["PATH_INFO"]
        assert not re.search(r"\son[a-z]+=", html) and "<style" not in html and " style=" not in html
        assert "javascript:" not in html


def test_the_layout_sends_the_csrf_token_with_every_htmx_request(alice):
    html = signed_in(alice).get("/devices/ready/").content.decode()
    assert re.search(
        r"<body[^>]*hx-headers='\{&quot;x-csrftoken&quot;: &quot;[A-Za-z0-9]{64}&quot;\}'|"
        r"<body[^>]*hx-headers='\{\"x-csrftoken\": \"[A-Za-z0-9]{64}\"\}'",
        html,
    )


def test_an_htmx_post_with_the_header_passes_and_one_without_is_refused(alice):
    client = signed_in(alice)
    assert client.htmx_post("/devices/ready/columns/", {"columns": ["device_name"]}).status_code == 200
    refused = client.post(
        "/devices/ready/columns/", {"columns": ["serial_number"]}, headers={"HX-Request": "true"}
    )
    assert refused.status_code == 403


def test_cookies_are_http_only_and_secure_outside_debug(alice):
    client = PortalClient()
    client.sign_in("alice")
    session, csrf = client.cookies["sessionid"], client.cookies["csrftoken"]
    assert session["httponly"] and session["secure"] and session["samesite"] == "Lax"
    assert csrf["httponly"] and csrf["secure"]


def test_no_secret_appears_in_pages(alice, settings):
    settings.AUTOPATCH_CLIENT_SECRET = "real-client-secret-value-0123456789"
    for response in pages(signed_in(alice)):
        html = response.content.decode()
        for secret in (
            settings.SECRET_KEY,
            SIMULATED_CLIENT_SECRET,
            settings.AUTOPATCH_CLIENT_SECRET,
            PASSWORD,
        ):
            assert secret not in html


def test_a_forged_column_list_gets_a_clear_400_and_changes_nothing(bob):
    client = signed_in(bob)
    response = client.htmx_post("/devices/ready/columns/", {"columns": ["device_name", "password_hash"]})
    assert response.status_code == 400 and "There is no column" in response.content.decode()


@pytest.mark.parametrize("params", [{"per_page": "100000"}, {"sort": "user__password"}])
def test_an_oversized_page_or_a_tampered_sort_gets_a_clear_400(bob, params):
    response = signed_in(bob).get("/devices/ready/", params)
    assert response.status_code == 400


def test_unknown_device_ids_in_an_action_get_a_clear_400(alice):
    response = signed_in(alice).htmx_post("/devices/actions/exclude/", {"ids": ["999999"]})
    assert response.status_code == 400


def production_env(**extra: str) -> dict[str, str]:
    # Playwright's tests set DJANGO_ALLOW_ASYNC_UNSAFE in this process; a deployment never would.
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DEBUG", "SECRET_KEY", "DJANGO_ALLOW_ASYNC_UNSAFE")
    }
    return {
        **env,
        "DJANGO_SETTINGS_MODULE": "autopatch_portal.settings",
        "SECRET_KEY": "x7" * 30 + "Qz-9",
        "DEBUG": "False",
        "SECURE_SSL_REDIRECT": "True",
        "SECURE_HSTS_SECONDS": "31536000",
        **extra,
    }


def test_check_deploy_is_clean_in_production():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO,
        env=production_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_https_requests_get_hsts(settings, alice):
    settings.SECURE_HSTS_SECONDS = 31536000
    response = PortalClient().get("/accounts/login/", secure=True)
    assert response["Strict-Transport-Security"].startswith("max-age=31536000")
    assert "Strict-Transport-Security" not in PortalClient().get("/accounts/login/")
