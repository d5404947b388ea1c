"""/healthz for container healthchecks, and the client's address behind the TLS proxy."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.models import AuditEvent

from .portal_client import PortalClient

pytestmark = pytest.mark.django_db


def test_it_answers_ok_without_signing_in_and_sets_no_cookie():
    response = Client().get("/healthz")
    assert response.status_code == 200 and response.content == b"ok\n"
    assert response["Cache-Control"] == "no-store" and not response.cookies


def test_it_answers_the_container_healthcheck_by_its_internal_address_without_tls(settings):
    """docker-compose.yml's healthcheck: plain HTTP to 127.0.0.1 while the portal redirects to HTTPS and
    knows only its public host name."""
    settings.SECURE_SSL_REDIRECT, settings.ALLOWED_HOSTS = True, ["portal.contoso.example"]
    assert Client().get("/healthz", HTTP_HOST="127.0.0.1:8000").status_code == 200
    assert Client().get("/accounts/login/", HTTP_HOST="portal.contoso.example").status_code == 301


def test_a_broker_that_does_not_answer_is_unavailable_and_says_no_more(settings):
    settings.CELERY_BROKER_URL = "redis://:s3cret-broker-password@127.0.0.1:1/0"
    response = Client().get("/healthz")
    assert response.status_code == 503 and response.content == b"unavailable\n"


def test_other_methods_are_not_health_checks():
    assert Client().post("/healthz").status_code == 404


def test_behind_the_proxy_the_audit_log_and_lockout_see_the_client(settings, alice):
    settings.BEHIND_TLS_PROXY = True
    client = PortalClient()
    client.sign_in("alice", "wrong password", HTTP_X_FORWARDED_FOR="198.51.100.1, 203.0.113.9")
    assert AuditEvent.objects.get(action=AuditEvent.Action.SIGN_IN_FAILED).source_ip == "203.0.113.9"


def test_without_the_proxy_a_forwarded_header_is_ignored(alice):
    PortalClient().sign_in("alice", "wrong password", HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert AuditEvent.objects.get(action=AuditEvent.Action.SIGN_IN_FAILED).source_ip == "127.0.0.1"
