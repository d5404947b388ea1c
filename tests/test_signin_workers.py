"""Entra ID sign-in through a real gunicorn with several workers, as `make run` and the container run it."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time

import pytest
import requests
from django.conf import settings as django_settings

from accounts.views.entra_signin import read_form_post

from . import conftest
from .conftest import REPO
from .entra_tenant import build_entra_tenant, upn

TOKEN_FIELD = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
WORKERS = 3
SIGN_INS = 8


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def portal_server(transactional_db, builder, use_tenant, settings):
    """gunicorn with several workers on the test database, signing in through the simulated tenant."""
    build_entra_tenant(builder, settings)
    data = builder.as_json()
    data["appRegistration"] = {"groupMembershipClaims": "None"}  # roles through checkMemberGroups too
    use_tenant(data)
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": conftest.test_database_url(),
        "AUTOPATCH_VAR_DIR": str(django_settings.VAR_DIR),
        "AUTOPATCH_TENANT_FILE": settings.AUTOPATCH_TENANT_FILE,
        "AUTOPATCH_AUTH": "entra",
        "AUTOPATCH_ADMIN_GROUP_ID": settings.AUTOPATCH_ADMIN_GROUP_ID,
        # Plain HTTP: cookies without Secure; DEBUG serves {% static %} without a collectstatic manifest.
        "SECURE_COOKIES": "False",
        "DEBUG": "True",
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "autopatch_portal.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(WORKERS),
            "--log-level",
            "warning",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            requests.get(f"{base}/healthz", timeout=5).raise_for_status()
            break
        except requests.RequestException:  # not listening yet, or its workers still booting on a busy machine
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail(f"gunicorn did not start:\n{server.stdout.read()}")
            time.sleep(0.2)
    yield base
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def sign_in(base: str, upn: str) -> requests.Session:
    """What a browser does: start, pick the user on the simulated Microsoft page, post its answer back."""
    browser = requests.Session()
    page = browser.get(f"{base}/accounts/entra/start/", timeout=30)
    assert page.status_code == 200, page.text[:500]
    token = TOKEN_FIELD.search(page.text).group(1)
    answer = browser.post(page.url, {"login_hint": upn, "csrfmiddlewaretoken": token}, timeout=30)
    action, fields = read_form_post(answer.text)
    assert action == f"{base}/accounts/entra/callback/", answer.text[:500]
    back = browser.post(action, fields, allow_redirects=False, timeout=30)
    assert back.status_code == 302 and back.headers["Location"] == "/devices/ready/", back.text[:800]
    return browser


def test_every_sign_in_succeeds_whichever_worker_answers(portal_server):
    for _ in range(SIGN_INS):
        page = sign_in(portal_server, upn("Ada Admingroup")).get(
            f"{portal_server}/devices/ready/", timeout=30
        )
        assert page.status_code == 200 and "Service Administrator" in page.text
