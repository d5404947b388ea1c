"""API keys: `manage.py create_api_key` prints a key once, the Administration page creates and revokes them
(Service Administrators only), only a digest is stored, and a revoked key stops at once."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from accounts.models import ApiKey, AuditEvent

from .api_client import ApiClient
from .portal_client import signed_in

pytestmark = pytest.mark.django_db


def test_the_command_prints_a_key_once_and_stores_only_its_digest():
    out, err = StringIO(), StringIO()
    call_command("create_api_key", "windows-365", "--scope", "administrator", stdout=out, stderr=err)
    key = out.getvalue().strip()
    assert key.startswith("apk_") and len(key) > 40 and "shown only now" in err.getvalue()
    row = ApiKey.objects.get(name="windows-365")
    assert row.scope == "administrator" and key.startswith(row.prefix)
    assert key not in {getattr(row, f.attname) for f in ApiKey._meta.concrete_fields}
    assert ApiClient(key).api_get("/api/v1/devices").status_code == 200
    with pytest.raises(CommandError, match="exists already"):
        call_command(
            "create_api_key", "windows-365", "--scope", "reader", stdout=StringIO(), stderr=StringIO()
        )


def test_an_admin_creates_a_key_on_the_page_and_sees_it_once(alice):
    client = signed_in(alice)
    response = client.form_post("/accounts/api-keys/", {"name": "fleet-reporter", "scope": "readiness"})
    html = response.content.decode()
    key = re.search(r'value="(apk_[^"]+)"', html).group(1)
    assert response.status_code == 200 and "it is not shown again" in html
    assert response["Cache-Control"].startswith("max-age=0") or "no-store" in response["Cache-Control"]
    listing = client.get("/accounts/api-keys/").content.decode()
    assert "fleet-reporter" in listing and key not in listing and key[:12] in listing
    # A readiness key posts reports and nothing else.
    assert ApiClient(key).api_get("/api/v1/devices").status_code == 403
    event = AuditEvent.objects.get(action=AuditEvent.Action.API_KEY)
    assert (event.actor, event.target, event.result) == ("alice", "fleet-reporter", "created (readiness)")


def test_a_revoked_key_stops_at_once(alice):
    client = signed_in(alice)
    html = client.form_post("/accounts/api-keys/", {"name": "script", "scope": "reader"}).content.decode()
    key = re.search(r'value="(apk_[^"]+)"', html).group(1)
    api = ApiClient(key)
    assert api.api_get("/api/v1/devices").status_code == 200
    row = ApiKey.objects.get(name="script")
    assert client.form_post(f"/accounts/api-keys/{row.pk}/revoke/").status_code == 302
    refused = api.api_get("/api/v1/devices")
    assert refused.status_code == 401 and "revoked" in refused.json()["detail"]
    assert "Revoked" in client.get("/accounts/api-keys/").content.decode()
    assert AuditEvent.objects.filter(
        action=AuditEvent.Action.API_KEY, result="revoked", target="script"
    ).exists()


def test_a_bad_or_taken_name_is_refused_on_the_page(alice):
    client = signed_in(alice)
    client.form_post("/accounts/api-keys/", {"name": "one", "scope": "reader"})
    taken = client.form_post("/accounts/api-keys/", {"name": "one", "scope": "reader"})
    assert taken.status_code == 400 and "exists already" in taken.content.decode()
    blank = client.form_post("/accounts/api-keys/", {"name": "  ", "scope": "owner"})
    assert blank.status_code == 400 and ApiKey.objects.count() == 1
    assert client.form_post("/accounts/api-keys/999/revoke/").status_code == 404


def test_readers_cannot_open_the_key_page(bob):
    client = signed_in(bob)
    assert client.get("/accounts/api-keys/").status_code == 403
    assert (
        client.form_post("/accounts/api-keys/", {"name": "mine", "scope": "administrator"}).status_code == 403
    )
    assert ApiKey.objects.count() == 0


@pytest.mark.parametrize(
    ("header", "complaint"),
    [
        ("Basic YWxpY2U6cHc=", "Authorization: Bearer"),
        ("Bearer", "malformed"),
        ("Bearer a b", "malformed"),
        ("Bearer not-a-key", "malformed"),
        ("Bearer apk_wrong", "not valid, or it was revoked"),
        ("Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln", "AUTOPATCH_AUTH=entra"),
    ],
)
def test_a_missing_or_malformed_credential_is_a_401(header, complaint):
    response = ApiClient().get("/api/v1/devices", headers={"Authorization": header})
    assert response.status_code == 401 and complaint in response.json()["detail"]
    assert ApiClient().get("/api/v1/devices").json()["code"] == "not_authenticated"
