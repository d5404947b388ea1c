"""Reloading a changed simulated tenant file replaces the cached tenant: the worker's memory does not grow."""

from __future__ import annotations

import gc
import json
import os
import time
import tracemalloc

import pytest

from accounts import entra
from autopatch_portal.tenant import connection, directory
from autopatch_portal.tenant.simulated import SimulatedTenant
from autopatch_portal.tenant.simulated.generator import TenantBuilder

RELOADS = 10


def live_tenants() -> int:
    gc.collect()
    return sum(
        1 for o in gc.get_objects() if type(o) is SimulatedTenant
    )  # (isinstance would wake lazy objects)


def write(path, builder: TenantBuilder) -> None:
    path.write_text(json.dumps(builder.as_json()))
    os.utime(path, ns=(time.time_ns(), time.time_ns()))  # a rewrite within the same tick keeps the mtime


def use_once() -> None:
    """What a run and a sign-in page do with the tenant: connect, read a page, build the sign-in config."""
    tenant = connection.connect()
    next(directory.device_pages(tenant.graph, page_size=10))
    entra.signin_config()


@pytest.fixture
def mid_sized_tenant(tmp_path, settings):
    builder = TenantBuilder(seed=7)
    for _ in range(2000):
        builder.device(report=True)
    path = tmp_path / "tenant.json"
    write(path, builder)
    settings.AUTOPATCH_TENANT_FILE = str(path)
    return path, builder


def test_each_reload_replaces_the_tenant_instead_of_adding_one(mid_sized_tenant):
    path, builder = mid_sized_tenant
    use_once()
    baseline = live_tenants()

    for i in range(RELOADS):
        builder.managed[i]["osVersion"] = "10.0.26100.1"  # the file changed
        write(path, builder)
        use_once()

    assert connection.connect().simulated.managed_devices[RELOADS - 1]["osVersion"] == "10.0.26100.1"
    assert (
        live_tenants() == baseline
    )  # (other files' tenants, from earlier tests in this process, may be cached too)


def test_memory_does_not_grow_with_reloads(mid_sized_tenant):
    path, builder = mid_sized_tenant
    use_once()
    gc.collect()
    tracemalloc.start()
    try:
        write(path, builder)
        use_once()
        gc.collect()
        after_one, _ = tracemalloc.get_traced_memory()
        for _ in range(RELOADS):
            write(path, builder)
            use_once()
        gc.collect()
        after_many, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    # One reload of this tenant holds a few MB; ten more that each kept their tenant would hold ten times that.
    assert after_many - after_one < 1_000_000, (
        f"{(after_many - after_one) / 1e6:.1f} MB more after {RELOADS} reloads"
    )
