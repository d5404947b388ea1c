"""One bad record never stops a run: it is skipped and named, its device left as it was, the rest evaluated."""

from __future__ import annotations

import pytest

from devices.discovery.records import DEVICE, MANAGED, MAX_LISTED, normalised, problems, sound
from devices.models import Device, DiscoveryRun, ReadinessStatus
from devices.runs import discover_now

pytestmark = pytest.mark.django_db

# (collection in the tenant file, property, bad value, what the run's error says about it)
BAD_RECORDS = [
    ("devices", "displayName", 42, "displayName is a whole number, not a string"),
    ("managedDevices", "model", {"name": "Latitude 5440"}, "model is an object, not a string"),
    ("managedDevices", "managementAgent", ["mdm"], "managementAgent is a list, not a string"),
    (
        "devices",
        "operatingSystemVersion",
        "10.0.22631\x00.5039",
        "operatingSystemVersion contains a NUL character",
    ),
    ("managedDevices", "serialNumber", "PF\x003KX9Q", "serialNumber contains a NUL character"),
    ("managedDevices", "id", "f" * 65, "id is 65 characters long; at most 64 fit"),
    ("managedDevices", "lastSyncDateTime", "2026-11-28T10:00:00", "lastSyncDateTime has no time zone"),
    ("managedDevices", "skuNumber", True, "skuNumber is true or false, not a whole number"),
]
IDS = [f"{collection}.{prop}:{type(value).__name__}" for collection, prop, value, _ in BAD_RECORDS]


def spoil(data: dict, victim: dict, collection: str, prop: str, value) -> str:
    """Give the victim's record in `collection` the bad value; return the object ID the run should name."""
    key = "deviceId" if collection == "devices" else "azureADDeviceId"
    record = next(r for r in data[collection] if r[key] == victim["deviceId"])
    named = record["id"]
    record[prop] = value
    return value if prop == "id" else named


def assert_named_and_skipped(run: DiscoveryRun, object_id: str, prop: str, says: str) -> None:
    assert run.status == DiscoveryRun.Status.PARTIAL, run.errors
    error = next(e for e in run.errors if e.get("object_id") == object_id[:80])
    assert prop in error["field"].split(", ") and says in error["message"]
    assert run.counts["skipped_records"] >= 1


@pytest.mark.parametrize(("collection", "prop", "value", "says"), BAD_RECORDS, ids=IDS)
def test_a_bad_record_is_skipped_and_named_and_the_other_devices_are_evaluated(
    builder, use_tenant, collection, prop, value, says
):
    good = [builder.device(report=True) for _ in range(3)]
    victim = builder.device(report=True)
    data = builder.as_json()
    object_id = spoil(data, victim, collection, prop, value)
    use_tenant(data)

    run = discover_now()

    assert_named_and_skipped(run, object_id, prop, says)
    assert not Device.objects.filter(azure_ad_device_id=victim["deviceId"]).exists()
    statuses = dict(Device.objects.values_list("azure_ad_device_id", "readiness_status"))
    assert statuses == {d["deviceId"]: ReadinessStatus.ACTIVE for d in good}


@pytest.mark.parametrize(("collection", "prop", "value", "says"), BAD_RECORDS, ids=IDS)
def test_a_known_device_with_a_bad_record_is_left_as_it_was(
    builder, use_tenant, settings, collection, prop, value, says
):
    good = [builder.device(report=True) for _ in range(3)]
    victim = builder.device(report=True)
    use_tenant(builder)
    assert discover_now().status == DiscoveryRun.Status.SUCCEEDED
    settings.AUTOPATCH_INTUNE_FULL_READ_HOURS = 0  # check-in times that go back are seen by a full read
    before = Device.objects.filter(azure_ad_device_id=victim["deviceId"]).values().get()
    for device in [*good, victim]:  # every device changed in Intune since: the good ones show it afterwards
        builder.managed_device_of(device)["lastSyncDateTime"] = "2020-01-01T00:00:00Z"
    data = builder.as_json()
    object_id = spoil(data, victim, collection, prop, value)
    use_tenant(data)

    run = discover_now()

    assert_named_and_skipped(run, object_id, prop, says)
    assert Device.objects.filter(azure_ad_device_id=victim["deviceId"]).values().get() == before
    assert set(
        Device.objects.exclude(azure_ad_device_id=victim["deviceId"]).values_list(
            "readiness_status", flat=True
        )
    ) == {ReadinessStatus.INACTIVE}


def test_text_longer_than_its_column_is_cut_alike_on_every_database(builder, use_tenant):
    device = builder.device(report=True)
    builder.managed_device_of(device)["model"] = "Latitude " + "9" * 400
    use_tenant(builder)

    run = discover_now()

    assert run.status == DiscoveryRun.Status.SUCCEEDED, run.errors
    stored = Device.objects.get(azure_ad_device_id=device["deviceId"])
    assert (
        stored.model == ("Latitude " + "9" * 400)[:256] and stored.readiness_status == ReadinessStatus.ACTIVE
    )


def test_graph_s_own_shapes_pass_the_checks():
    device = {
        "id": "6b1a",
        "deviceId": "0f4c",
        "displayName": "FIN-LT-000001",
        "accountEnabled": True,
        "operatingSystemVersion": None,
        "registrationDateTime": "2024-03-01T08:15:02.1234567Z",
    }
    managed = {
        "id": "a1",
        "azureADDeviceId": "0f4c",
        "skuNumber": 4,
        "lastSyncDateTime": "0001-01-01T00:00:00Z",
        "configurationManagerClientEnabledFeatures": {"officeApps": True},
        "model": None,
    }
    assert problems(device, DEVICE) == [] and problems(managed, MANAGED) == []
    assert problems({**managed, "lastSyncDateTime": "yesterday"}, MANAGED) == [
        ("lastSyncDateTime", "is not a date and time: 'yesterday'")
    ]


def test_the_one_pass_check_agrees_with_the_named_problems():
    """`sound` (every object a run reads) keeps exactly the objects `problems` finds nothing in, cut as
    `normalised` cuts them."""
    device = {"id": "6b1a", "deviceId": "0f4c", "displayName": "FIN-LT-000001", "accountEnabled": True}
    managed = {
        "id": "a1",
        "azureADDeviceId": "0f4c",
        "lastSyncDateTime": "2026-11-28T10:00:00Z",
        "skuNumber": 4,
    }
    values = [
        *(value for _, _, value, _ in BAD_RECORDS),
        None,
        "",
        "x" * 300,
        "f" * 65,
        "2026-11-28T10:00:00+02:00",
        "yesterday",
        {"officeApps": True},
        {"office\x00Apps": True},
        {"apps": ["a\x00"]},
        7,
        1.5,
        False,
    ]
    for base, shape in ((device, DEVICE), (managed, MANAGED)):
        for prop in shape.props:
            for value in values:
                item = {**base, prop: value}
                expected = None if problems(item, shape) else normalised(item, shape)
                assert sound(item, shape) == expected, (shape.kind, prop, value)


def test_a_malformed_tenant_file_still_fails_the_run_naming_the_fault_and_changes_nothing(
    builder, use_tenant, tmp_path, settings
):
    for _ in range(3):
        builder.device(report=True)
    use_tenant(builder)
    assert discover_now().status == DiscoveryRun.Status.SUCCEEDED
    before = list(Device.objects.order_by("pk").values())
    broken = tmp_path / "broken.json"
    broken.write_text('{"registrationGroupId": "x", "groups": [')
    settings.AUTOPATCH_TENANT_FILE = str(broken)

    run = discover_now()

    assert run.status == DiscoveryRun.Status.FAILED
    assert "is not JSON" in run.errors[0]["message"] and "line 1 column" in run.errors[0]["message"]
    assert list(Device.objects.order_by("pk").values()) == before


def test_past_a_hundred_bad_records_the_rest_are_counted(builder, use_tenant):
    good = builder.device(report=True)
    bad = [builder.device() for _ in range(MAX_LISTED + 3)]
    for device in bad:
        builder.managed_device_of(device)["skuNumber"] = "4"
    use_tenant(builder)

    run = discover_now()

    assert run.status == DiscoveryRun.Status.PARTIAL
    named = [e for e in run.errors if e["stage"] == "managed device record"]
    assert len(named) == MAX_LISTED and named[0]["message"].endswith(
        "skuNumber is a string, not a whole number."
    )
    assert run.errors[-1] == {
        "stage": "records",
        "message": "3 more unsound records skipped; the first 100 are named.",
    }
    assert run.counts["skipped_records"] == MAX_LISTED + 3
    assert list(Device.objects.values_list("azure_ad_device_id", flat=True)) == [good["deviceId"]]
