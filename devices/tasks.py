"""Celery tasks: the one discovery task that the hourly schedule, the button and the API all start, and the
registration group's additions too long for a web request."""

from __future__ import annotations

from celery import shared_task

from accounts.audit import record_event
from accounts.models import AuditEvent

from .discovery import run_discovery
from .models import DiscoveryRun


@shared_task(name="devices.tasks.discover", ignore_result=True)
def discover(trigger: str = DiscoveryRun.Trigger.SCHEDULE, run_id: int | None = None) -> int:
    """Carry out a discovery run; the schedule passes no run, the button and API pass the one they queued."""
    if run_id:
        run = DiscoveryRun.objects.filter(pk=run_id).first()
        if run is None:  # its run is gone (a test database flushed since): a new one would be nobody's
            return 0
    else:
        run = DiscoveryRun.objects.create(trigger=trigger)
    run_discovery(run)
    if run.trigger == DiscoveryRun.Trigger.SCHEDULE:  # the button and the API record their own request
        record_event(
            None, AuditEvent.Action.DISCOVERY, target=f"run #{run.pk}", result=run.status, trigger=run.trigger
        )
    return run.pk


@shared_task(name="devices.tasks.add_to_group", ignore_result=True)
def add_to_group(addition_id: int) -> None:
    """Add the devices of a bulk-add file that was too long to add within its request (devices.group_members)."""
    from .group_members import carry_out

    carry_out(addition_id)
