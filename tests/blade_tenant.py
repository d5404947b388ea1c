"""A small tenant for the blade's tests: every tab has devices, built with the TenantBuilder and discovered for real."""

from __future__ import annotations

import pytest

from devices.runs import discover_now

READY = ("ALPHA-01", "ALPHA-02", "ALPHA-03", "BRAVO-04")
NOT_READY = ("CHARLIE-05",)
NOT_REGISTERED = ("DELTA-06", "ECHO-07")


def build_blade_tenant(builder, use_tenant):
    for name in READY[:3]:
        builder.device(name, report=True)
    builder.device(
        READY[3], report=True, management_agent="configurationManagerClientMdm", trust_type="ServerAd"
    )
    builder.device(
        NOT_READY[0], report={"Internet connectivity": "No route to the internet from the device."}
    )
    builder.device(NOT_REGISTERED[0], sku_number=101)  # Home edition
    builder.device(NOT_REGISTERED[1], owner_type="personal", trust_type="Workplace")
    use_tenant(builder)
    discover_now()
    return builder


@pytest.fixture
def blade_tenant(db, builder, use_tenant):
    return build_blade_tenant(builder, use_tenant)
