"""The thread that writes evaluated chunks (PostgreSQL, outside a transaction): a write it fails ends the run
plainly, and leaves neither the thread nor the lease behind."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from devices.discovery.evaluation import CHUNK
from devices.models import Device, DeviceStatusChange, DiscoveryRun, ReadinessStatus
from devices.runs import discover_now

pytestmark = [
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the writer thread is PostgreSQL's"),
    pytest.mark.django_db(transaction=True),
]

REFUSE = """
CREATE FUNCTION refuse_one_device() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.device_name = 'REFUSED-01' THEN RAISE EXCEPTION 'the database refused REFUSED-01'; END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refuse_one_device BEFORE INSERT ON devices_device FOR EACH ROW EXECUTE FUNCTION refuse_one_device();
"""


def writer_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("discovery-writer")]


def test_a_chunk_the_database_refuses_fails_the_run_and_the_next_run_writes_every_device(builder, use_tenant):
    for _ in range(CHUNK + 10):  # two chunks: the refused device is in the second
        builder.device()
    refused = builder.device("REFUSED-01")
    members = builder.registration_group["members"]
    last = "ffffffff-ffff-4fff-bfff-ffffffffffff"  # candidates are evaluated in object ID order
    members[members.index(refused["id"])] = refused["id"] = last
    use_tenant(builder)
    with connection.cursor() as cursor:
        cursor.execute(REFUSE)
    try:
        with pytest.raises(Exception, match="the database refused REFUSED-01"):
            discover_now()
        run = DiscoveryRun.objects.get()
        assert run.status == DiscoveryRun.Status.FAILED
        assert run.finished_at is not None
        assert [e["stage"] for e in run.errors] == ["internal"]
        assert "the database refused REFUSED-01" in run.errors[0]["message"]
        assert writer_threads() == []
        # The first chunk's write was its own transaction, with its history; the second wrote nothing.
        assert Device.objects.count() == CHUNK
        assert DeviceStatusChange.objects.count() == CHUNK
    finally:
        with connection.cursor() as cursor:
            cursor.execute(
                "DROP TRIGGER refuse_one_device ON devices_device; DROP FUNCTION refuse_one_device()"
            )

    again = discover_now()  # the lease was given back: this run is not covered by the failed one

    assert again.pk != run.pk and again.status == DiscoveryRun.Status.SUCCEEDED
    assert Device.objects.count() == CHUNK + 11
    assert Device.objects.filter(device_name="REFUSED-01", readiness_status=ReadinessStatus.ACTIVE).exists()
    assert not Device.objects.filter(readiness_status="").exists()
    assert writer_threads() == []
