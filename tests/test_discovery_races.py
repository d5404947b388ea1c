"""Discovery and admins at once: actions posted during a run survive it, simultaneous starts make one run."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

import pytest
from django.db import connection as db_connection
from django.db.models import OuterRef, Subquery

from accounts.models import AuditEvent
from devices.models import Device, DeviceStatusChange, DiscoveryRun, ReadinessStatus
from devices.runs import discover_now
from tests.portal_client import signed_in
from tests.test_discovery_task import wait_for_run

RACED_DEVICES = 3000
BATCH = 10


def latest_history_disagrees() -> list[str]:
    """Devices whose last status change does not end in the status they have."""
    last = DeviceStatusChange.objects.filter(device=OuterRef("pk")).order_by("-changed_at", "-id")
    rows = Device.objects.annotate(last=Subquery(last.values("to_status")[:1]))
    return [d.device_name for d in rows if d.last != d.readiness_status]


def post_while_running(run: DiscoveryRun, post: Callable[[list[int]], None], pks: list[int],
                       during: list[str]) -> None:  # fmt: skip
    """Post batches of `pks` as long as the run goes on; note the run's progress at each post."""
    try:
        while pks:
            run.refresh_from_db()
            if run.status == DiscoveryRun.Status.QUEUED:
                time.sleep(0.05)
                continue
            if run.status != DiscoveryRun.Status.RUNNING:
                return
            batch, pks[:] = pks[:BATCH], pks[BATCH:]
            during.append(run.progress)
            post(batch)
    finally:
        db_connection.close()  # this thread's connection


@pytest.mark.django_db(transaction=True)
def test_exclusions_and_rings_posted_while_a_run_evaluates_survive_it(builder, use_tenant, celery_worker_process,
                                                                     alice):  # fmt: skip
    devices = [builder.device(report=True) for _ in range(RACED_DEVICES)]
    use_tenant(builder)
    assert discover_now().status == DiscoveryRun.Status.SUCCEEDED
    for device in devices:  # every device's inputs change, so the next run evaluates and writes every one
        builder.managed_device_of(device)["manufacturer"] = "Contoso"
    use_tenant(builder)
    worker = celery_worker_process()
    pks = list(Device.objects.values_list("pk", flat=True))
    random.Random(1).shuffle(pks)
    to_exclude, to_ring = pks[: len(pks) // 2], pks[len(pks) // 2 :]
    excluder, ringer = signed_in(alice), signed_in(alice)

    assert signed_in(alice).htmx_post("/devices/discover/").status_code == 200
    run = DiscoveryRun.objects.get(trigger=DiscoveryRun.Trigger.MANUAL)
    during: list[str] = []
    threads = [
        threading.Thread(target=post_while_running, args=(
            DiscoveryRun.objects.get(pk=run.pk),
            lambda ids: excluder.form_post("/devices/actions/exclude/", {"ids": ids}), to_exclude, during)),
        threading.Thread(target=post_while_running, args=(
            DiscoveryRun.objects.get(pk=run.pk),
            lambda ids: ringer.form_post("/devices/actions/assign_ring/", {"ids": ids, "ring": "test"}), to_ring, during)),
    ]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    finished = wait_for_run(run, worker, seconds=300)

    assert finished.status == DiscoveryRun.Status.SUCCEEDED, finished.errors
    assert sum(1 for p in during if p.startswith("Evaluated")) >= 2, during  # actions did land mid-evaluation
    outcomes = [(event.details["action"], o) for event in AuditEvent.objects.filter(action=AuditEvent.Action.DEVICE_ACTION)
                for o in event.details["outcomes"] if o["done"]]  # fmt: skip
    excluded = {o["device"] for action, o in outcomes if action == "exclude"}
    ringed = {o["device"] for action, o in outcomes if action == "assign_ring"}
    assert len(excluded) >= 2 * BATCH and len(ringed) >= 2 * BATCH
    lost_exclusions = Device.objects.filter(azure_ad_device_id__in=excluded).exclude(
        excluded=True, readiness_status=ReadinessStatus.EXCLUDED, ring="")  # fmt: skip
    lost_rings = Device.objects.filter(azure_ad_device_id__in=ringed).exclude(ring="test", ring_assigned_by="admin")
    assert list(lost_exclusions.values_list("device_name", "readiness_status")) == []
    assert list(lost_rings.values_list("device_name", "ring", "ring_assigned_by")) == []
    assert latest_history_disagrees() == []
    # The run did its own work too: every device not excluded carries the new manufacturer.
    assert not Device.objects.filter(excluded=False).exclude(manufacturer="Contoso").exists()
