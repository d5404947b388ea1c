"""The role table, cell by cell, enforced on the server over real requests with CSRF checks on.

| Role | Discover devices | Modify columns | Refresh device list | Export to .CSV | Device actions |
| Service Administrator (alice) | Yes | Yes | Yes | Yes | Yes |
| Service Reader (bob) | No | Yes | Yes | Yes | No |
A refusal changes nothing. Anonymous users and users without a role, on every URL: tests/test_access.py.
"""

from __future__ import annotations

import pytest
from django.utils import timezone

from accounts.models import AuditEvent
from accounts.roles import ROLE_CAPABILITIES, Capability, Role
from devices.models import ColumnChoice, Device, DiscoveryRun, ReadinessStatus

from .portal_client import PortalClient, signed_in

pytestmark = pytest.mark.django_db
WHO = ["alice", "bob"]


@pytest.fixture
def as_(alice, bob):
    users = {"alice": alice, "bob": bob}

    def client_for(who: str) -> PortalClient:
        return signed_in(users[who])

    return client_for


@pytest.fixture
def device(db) -> Device:
    return Device.objects.create(
        azure_ad_device_id="0b6f3c1e-1111-4000-8000-000000000001",
        device_name="FIN-LT-000001",
        readiness_status=ReadinessStatus.ACTIVE,
        registered_at=timezone.now(),
        ring="broad",
    )


def expect_refusal(response, who: str) -> None:
    assert response.status_code == 403 and "Your role does not allow" in response.content.decode()


def test_the_table_in_code_is_the_seeds():
    assert ROLE_CAPABILITIES[Role.ADMINISTRATOR] == set(Capability.values)
    assert ROLE_CAPABILITIES[Role.READER] == {"modify_columns", "refresh_device_list", "export_devices"}


@pytest.mark.parametrize("who", WHO)
def test_discover_devices(as_, who):
    client = as_(who)
    response = client.htmx_post("/devices/discover/")
    if who == "alice":
        assert response.status_code == 200 and "Discovery run #" in response.content.decode()
        assert DiscoveryRun.objects.filter(trigger="manual", requested_by="alice").count() == 1
        assert AuditEvent.objects.filter(action="discovery", actor="alice").exists()
    else:
        expect_refusal(response, who)
        assert DiscoveryRun.objects.count() == 0


@pytest.mark.parametrize("who", WHO)
def test_modify_columns(as_, who):
    client = as_(who)
    response = client.htmx_post("/devices/ready/columns/", {"columns": ["device_name", "serial_number"]})
    assert response.status_code == 200 and response["HX-Refresh"] == "true"
    assert ColumnChoice.objects.get(user__username=who, tab="ready").columns == [
        "device_name",
        "serial_number",
    ]
    assert AuditEvent.objects.filter(action="columns", actor=who).exists()


@pytest.mark.parametrize("who", WHO)
def test_refresh_device_list(as_, who, device):
    client = as_(who)
    response = client.get("/devices/ready/", headers={"HX-Request": "true"})
    assert response.status_code == 200 and "FIN-LT-000001" in response.content.decode()


@pytest.mark.parametrize("who", WHO)
def test_export_to_csv(as_, who, device):
    client = as_(who)
    response = client.get("/devices/ready/export.csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert "FIN-LT-000001" in b"".join(response.streaming_content).decode()
    assert AuditEvent.objects.get(action="export", actor=who).result == "1 rows"


@pytest.mark.parametrize("who", WHO)
def test_device_actions(as_, who, device):
    client = as_(who)
    response = client.htmx_post("/devices/actions/exclude/", {"ids": [device.pk]})
    device.refresh_from_db()
    if who == "alice":
        assert response.status_code == 200
        assert device.excluded and device.readiness_status == ReadinessStatus.EXCLUDED
        assert AuditEvent.objects.get(action="device_action", actor="alice").target == device.device_name
    else:
        expect_refusal(response, who)
        assert not device.excluded and device.readiness_status == ReadinessStatus.ACTIVE


@pytest.mark.parametrize("who", ["alice", "bob"])
def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(as_, who, device):
    client = as_(who)
    response = client.post("/devices/actions/exclude/", {"ids": [device.pk]}, headers={"HX-Request": "true"})
    assert response.status_code == 403 and "security token" in response.content.decode()
    device.refresh_from_db()
    assert not device.excluded


def test_a_reader_is_not_offered_what_the_role_cannot_do(as_, device):
    html = as_("bob").get("/devices/ready/").content.decode()
    assert "/devices/discover/" not in html and "/devices/actions/" not in html
    admin_html = as_("alice").get("/devices/ready/").content.decode()
    assert "/devices/discover/" in admin_html and "/devices/actions/" in admin_html


@pytest.mark.parametrize("who", WHO)
def test_device_details(as_, who, device):
    response = as_(who).get(f"/devices/device/{device.pk}/", headers={"HX-Request": "true"})
    assert response.status_code == 200 and "FIN-LT-000001" in response.content.decode()
