"""The seed's role table on every API endpoint: a test per (endpoint, caller) cell, anonymous included.

Callers: no credential, a revoked key, each key scope (administrator, reader, readiness), and portal sessions of a
Service Administrator, a Service Reader and a user without a role."""

from __future__ import annotations

import pytest

from accounts.api_keys import revoke_key
from accounts.models import ApiKey
from devices.models import Device, DiscoveryRun

from .api_client import ApiClient, api_key
from .portal_client import signed_in

pytestmark = pytest.mark.django_db

CALLERS = (
    "anonymous",
    "revoked key",
    "administrator key",
    "reader key",
    "readiness key",
    "admin session",
    "reader session",
    "no-role session",
)
READERS = {"administrator key", "reader key", "admin session", "reader session"}
ADMINS = {"administrator key", "admin session"}
REPORTERS = {"administrator key", "readiness key", "admin session"}

# (method, path, body, who may): {device} and {run} are filled in from the tenant.
ENDPOINTS = [
    ("GET", "/api/v1/devices", None, READERS),
    ("GET", "/api/v1/devices/{device}", None, READERS),
    (
        "POST",
        "/api/v1/devices/actions/assign-ring",
        {"azureADDeviceIds": ["{device}"], "ring": "test"},
        ADMINS,
    ),
    ("POST", "/api/v1/devices/actions/exclude", {"azureADDeviceIds": ["{device}"]}, ADMINS),
    ("POST", "/api/v1/devices/actions/restore", {"azureADDeviceIds": ["{device}"]}, ADMINS),
    ("POST", "/api/v1/discoveries", None, ADMINS),
    ("GET", "/api/v1/discoveries/{run}", None, READERS),
    (
        "POST",
        "/api/v1/readiness-reports",
        {
            "azureADDeviceId": "{device}",
            "generatedDateTime": "2030-01-01T00:00:00Z",
            "checks": [{"name": "Internet connectivity", "result": "passed"}],
        },
        REPORTERS,
    ),
    ("POST", "/api/v1/registrations", {"azureADDeviceIds": ["{device}"]}, ADMINS),
    ("GET", "/api/schema/", None, READERS),
    ("GET", "/api/docs/", None, READERS),
]


def fill(value, device: str, run: int):
    if isinstance(value, str):
        return value.replace("{device}", device).replace("{run}", str(run))
    if isinstance(value, list):
        return [fill(v, device, run) for v in value]
    if isinstance(value, dict):
        return {k: fill(v, device, run) for k, v in value.items()}
    return value


def client_for(caller: str, alice, bob, charlie):
    if caller == "anonymous":
        return ApiClient()
    if caller == "revoked key":
        key = api_key("administrator", "revoked")
        revoke_key(ApiKey.objects.get(name="revoked").pk, "tests")
        return ApiClient(key)
    if caller.endswith(" key"):
        return ApiClient(api_key(caller.removesuffix(" key")))
    user = {"admin session": alice, "reader session": bob, "no-role session": charlie}[caller]
    client = signed_in(user)
    client.__class__ = type("SessionApiClient", (ApiClient, type(client)), {})
    client.credential = None
    return client


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize(
    ("method", "path", "body", "allowed"), ENDPOINTS, ids=[f"{m} {p}" for m, p, _, _ in ENDPOINTS]
)
def test_the_role_table_holds(method, path, body, allowed, caller, blade_tenant, alice, bob, charlie):
    device = Device.objects.get(device_name="ALPHA-01").azure_ad_device_id
    run = DiscoveryRun.objects.first().pk
    client = client_for(caller, alice, bob, charlie)
    url = fill(path, device, run)
    if method == "GET":
        response = client.api_get(url)
    else:
        headers = {"X-CSRFToken": client.csrf_token()} if hasattr(client, "csrf_token") else {}
        response = client.api_post(url, fill(body, device, run), headers=headers)
    if caller in ("anonymous", "revoked key"):
        assert response.status_code == 401, response.content[:300]
        assert response.json()["code"] in ("not_authenticated", "authentication_failed")
        assert response["WWW-Authenticate"].startswith("Bearer")
    elif caller in allowed:
        assert 200 <= response.status_code < 300, response.content[:300]
    else:
        assert response.status_code == 403, response.content[:300]
        assert "does not allow" in response.json()["detail"]
