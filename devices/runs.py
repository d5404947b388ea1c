"""Starting discovery runs: the hourly schedule, the Discover devices button, the API and the command."""

from __future__ import annotations

from django.db import transaction

from .discovery import active_run, run_discovery
from .discovery.lease import lock_lease
from .models import DiscoveryRun


def start_discovery(trigger: str, requested_by: str = "") -> tuple[DiscoveryRun, bool]:
    """Queue a run for the worker; if one is already under way, return it and False."""
    from .tasks import discover

    with transaction.atomic():
        lock_lease()  # simultaneous clicks queue one run: the others wait here, then find it
        current = active_run()
        if current is not None:
            return current, False
        run = DiscoveryRun.objects.create(trigger=trigger, requested_by=requested_by)
        discover.delay_on_commit(trigger=trigger, run_id=run.pk)
    return run, True


def request_discovery(actor, trigger: str, request=None) -> tuple[DiscoveryRun, bool]:
    """Discover devices for someone (the button, the API): start a run, or find the one under way, and record
    the request in the audit log."""
    from accounts.audit import record_event
    from accounts.models import AuditEvent

    run, started = start_discovery(trigger, requested_by=actor.get_username())
    record_event(
        actor,
        AuditEvent.Action.DISCOVERY,
        target=f"run #{run.pk}",
        request=request,
        result="started" if started else "already running",
        started=started,
    )
    return run, started


def discover_now(trigger: str = DiscoveryRun.Trigger.COMMAND, requested_by: str = "") -> DiscoveryRun:
    """Run one discovery in this process, through the same code as the task. A run already under way covers
    it (the returned run says which); a run waiting for a worker is covered by this one."""
    run = DiscoveryRun.objects.create(trigger=trigger, requested_by=requested_by)
    return run_discovery(run)
