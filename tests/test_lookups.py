"""`field__any_of`: the same rows as `__in`, on PostgreSQL (one array parameter) and SQLite (IN)."""

from __future__ import annotations

import pytest

from devices.models import TenantObject

pytestmark = pytest.mark.django_db

AWKWARD = ['a"b', "c,d", "{e}", "f\\g", "h'i", "NULL", "", " j ", "ü"]


def test_any_of_matches_what_in_matches_with_values_an_array_literal_must_quote():
    for n, object_id in enumerate([*AWKWARD, "k", "l"]):
        TenantObject.objects.create(kind="device", object_id=object_id, device_id=f"d{n}")
    wanted = [*AWKWARD, "absent"]

    found = set(TenantObject.objects.filter(object_id__any_of=wanted).values_list("object_id", flat=True))

    assert found == set(AWKWARD)
    assert found == set(TenantObject.objects.filter(object_id__in=wanted).values_list("object_id", flat=True))
    # A dict or a set gives its keys or members, as `__in` takes them.
    assert TenantObject.objects.filter(object_id__any_of={"k": 1, "l": 2}).count() == 2
    assert TenantObject.objects.filter(object_id__any_of={"k"}).count() == 1


def test_any_of_an_empty_list_matches_nothing():
    TenantObject.objects.create(kind="device", object_id="x", device_id="d")

    assert TenantObject.objects.filter(object_id__any_of=[]).count() == 0
    assert TenantObject.objects.exclude(object_id__any_of=[]).count() == 1
