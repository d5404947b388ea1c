"""devices.bulk.instance_maker: the instance Django's keywords would build, faster, and saved the same way."""

from __future__ import annotations

import pytest
from django.utils import timezone

from devices.bulk import bulk_write, instance_maker
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
