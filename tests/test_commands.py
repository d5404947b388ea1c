"""The management commands: discover, export_devices, make_tenant."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.core.management import CommandError, call_command

from autopatch_portal.tenant.simulated import load_tenant_file

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_discover_prints_the_counts_per_readiness_status(builder, use_tenant):
    builder.device()
    builder.device()
    builder.device(architecture="arm64")
    use_tenant(builder)

    out = run("discover")

    assert "Succeeded, 3 devices in the registration group" in out
    assert "  Active: 2\n" in out and "  Pre-requisites failed: 1\n" in out
    assert "Registered in this run: 2" in out


def test_discover_fails_loudly_when_the_tenant_cannot_be_read(builder, use_tenant):
    builder.device()
    tenant = use_tenant(builder)
    tenant.inject("/v1.0/devices", 403, times=5)

    with pytest.raises(CommandError, match="discovery failed"):
        run("discover")


def rows(out: str) -> list[dict[str, str]]:
    return list(
        csv.DictReader(io.StringIO(out.removeprefix("\ufeff")))
    )  # exports start with a byte order mark


def test_export_devices_writes_the_tab_as_csv(builder, use_tenant):
    builder.device(name="PC-OK")
    two = builder.device(name="PC-BAD", sku_number=101, architecture="x86")
    use_tenant(builder)
    run("discover")

    out = run("export_devices", "--tab", "not-registered")

    header = next(csv.reader(io.StringIO(out.removeprefix("\ufeff"))))
    assert header[:3] == ["Device name", "Azure AD device ID", "Serial number"]
    assert {"Ring", "Readiness status", "Failed checks"} <= set(header)
    (row,) = rows(out)
    assert row["Device name"] == "PC-BAD"
    assert row["Azure AD device ID"] == two["deviceId"]
    assert row["Readiness status"] == "Pre-requisites failed"
    assert row["Failed checks"] == "Windows edition; Windows OS build and architecture"


def test_export_devices_all_columns_and_all_tabs(builder, use_tenant):
    builder.device(name="=HYPERLINK(1)")
    builder.device(name="PC-2", managed=False)
    use_tenant(builder)
    run("discover")

    out = run("export_devices", "--tab", "all", "--columns", "all")

    exported = rows(out)
    assert len(exported) == 2
    assert {"Intune device ID", "Added through", "Last discovered", "Edition"} <= set(exported[0])
    assert exported[0]["Device name"] == "'=HYPERLINK(1)"  # neutralised, not a formula
    assert exported[0]["Added through"] == "Direct"
    assert exported[0]["Last discovered"].endswith(" UTC")


def test_export_devices_refuses_an_unknown_column(db):
    with pytest.raises(CommandError, match="unknown column 'password'"):
        run("export_devices", "--tab", "ready", "--columns", "device_name,password")


def test_make_tenant_writes_a_tenant_with_every_outcome(tmp_path):
    out = tmp_path / "tenant.json"

    message = run("make_tenant", "--devices", "400", "--out", str(out), "--seed", "5")

    data = json.loads(out.read_text())
    assert "Wrote" in message
    assert len(data["devices"]) >= 400
    assert {"registrationGroupId", "groups", "devices", "managedDevices", "readinessReports"} <= set(data)
    agents = {m["managementAgent"] for m in data["managedDevices"]}
    assert {"mdm", "configurationManagerClientMdm"} <= agents
    assert load_tenant_file(out).registration_group_id == data["registrationGroupId"]


def test_a_generated_tenant_discovers_into_every_tab(tmp_path, settings):
    out = tmp_path / "tenant.json"
    run("make_tenant", "--devices", "600", "--out", str(out))
    settings.AUTOPATCH_TENANT_FILE = str(out)
    # As `make run` does: the readiness script first, whose run states carry the file's readiness reports.
    assert "Readiness script created" in run("deploy_readiness_script")

    text = run("discover")

    for status in ("Active", "Readiness failed", "Pre-requisites failed"):
        count = int(text.split(f"  {status}: ")[1].split("\n")[0])
        assert count > 0, status
    assert "Ignored group Autopatch - Pilot ring (nested two levels)" in text


def test_discover_is_recorded_in_the_audit_log(builder, use_tenant):
    from accounts.models import AuditEvent

    builder.device()
    use_tenant(builder)

    run("discover")

    event = AuditEvent.objects.get(action=AuditEvent.Action.DISCOVERY)
    assert event.actor == "command line" and event.result == "succeeded"
