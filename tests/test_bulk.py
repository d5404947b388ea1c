"""devices.bulk: instance_maker builds the instance Django's keywords would, faster, saved the same way; insert_new
writes rows new to the table, and a row that appeared meanwhile as bulk_write would."""

from __future__ import annotations

import pytest
from django.utils import timezone

from devices.bulk import FEW_ROWS, bulk_write, insert_new, instance_maker
from devices.models import Device, ReadinessStatus, Ring

pytestmark = pytest.mark.django_db


def test_an_instance_made_from_a_dict_is_the_one_keywords_make_and_is_written_alike():
    values = {
        "azure_ad_device_id": "5a0b8d8e-0000-4000-8000-000000000001",
        "device_name": "HR-LT-000001",
        "readiness_status": ReadinessStatus.ACTIVE,
        "ring": Ring.FAST,
        "checks": [{"name": "Windows edition", "passed": True}],
    }
    make = instance_maker(Device)

    made, by_keywords = make(values), Device(**values)

    fields = [
        f.attname
        for f in Device._meta.concrete_fields
        if not f.generated and f.attname != "first_discovered_at"
    ]
    assert {f: getattr(made, f) for f in fields} == {f: getattr(by_keywords, f) for f in fields}
    assert made.pk is None and made._state.adding
    (written,) = bulk_write([made], unique_field="azure_ad_device_id", update_fields=["device_name"])
    stored = Device.objects.get(pk=written.pk)
    assert (stored.device_name, stored.ring, stored.checks) == ("HR-LT-000001", Ring.FAST, values["checks"])
    assert stored.first_discovered_at is not None and stored.search_name == "HR-LT-000001"


def test_callable_defaults_are_called_for_each_instance():
    make = instance_maker(Device)
    before = timezone.now()

    one, two = make({"azure_ad_device_id": "a"}), make({"azure_ad_device_id": "b"})

    assert one.checks == [] and one.checks is not two.checks
    assert before <= one.first_discovered_at <= two.first_discovered_at <= timezone.now()


def new_devices(n: int, name: str = "LT") -> list[Device]:
    make = instance_maker(Device)
    return [
        make(
            {
                "azure_ad_device_id": f"5a0b8d8e-0000-4000-8000-{i:012d}",
                "device_name": f"{name}-{i:06d}",
                "readiness_status": ReadinessStatus.ACTIVE,
                "ring": Ring.FAST,
                "checks": [{"name": "Windows edition", "passed": True, "reason": f"device {i}"}],
            }
        )
        for i in range(n)
    ]


UPSERT = {"version_field": "state_version", "update_fields": ["device_name", "checks"]}


def test_rows_new_to_the_table_are_written_with_their_keys_set():
    devices = new_devices(FEW_ROWS + 30)

    written = insert_new(devices, unique_field="azure_ad_device_id", **UPSERT)

    assert written == devices and len({d.pk for d in written}) == len(devices)
    stored = {d.pk: d for d in Device.objects.all()}
    assert len(stored) == len(devices)
    for device in devices:
        row = stored[device.pk]
        assert (row.azure_ad_device_id, row.device_name, row.checks) == (
            device.azure_ad_device_id,
            device.device_name,
            device.checks,
        )
        assert row.tab == "ready" and row.search_name == device.device_name.upper()
    # The table's own keys go on after those taken.
    assert Device.objects.create(azure_ad_device_id="after").pk > max(stored)


def test_a_row_that_appeared_meanwhile_is_updated_as_bulk_write_would_and_the_rest_inserted():
    devices = new_devices(FEW_ROWS + 30)
    meanwhile = Device.objects.create(azure_ad_device_id=devices[7].azure_ad_device_id, device_name="OLD")

    written = insert_new(devices, unique_field="azure_ad_device_id", **UPSERT)

    assert len(written) == len(devices) and Device.objects.count() == len(devices)
    assert Device.objects.get(pk=meanwhile.pk).device_name == devices[7].device_name
    assert {d.pk for d in written} == set(Device.objects.values_list("pk", flat=True))


def test_a_row_an_admin_changed_meanwhile_is_left_as_they_left_it():
    devices = new_devices(FEW_ROWS + 30)
    Device.objects.create(
        azure_ad_device_id=devices[3].azure_ad_device_id,
        device_name="EXCLUDED",
        excluded=True,
        state_version=1,
    )

    written = insert_new(devices, unique_field="azure_ad_device_id", **UPSERT)

    assert devices[3] not in written and len(written) == len(devices) - 1
    assert Device.objects.get(azure_ad_device_id=devices[3].azure_ad_device_id).device_name == "EXCLUDED"
