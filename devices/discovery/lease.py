"""The lease that keeps discovery runs from overlapping, and what counts as a run in progress."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from ..models import DiscoveryLease, DiscoveryRun

LEASE = "discovery"


def acquire_lease(run: DiscoveryRun) -> bool:
    """Claim the single lease row; an expired lease (its worker died) can be taken over."""
    now = timezone.now()
    DiscoveryLease.objects.get_or_create(name=LEASE)
    lease = DiscoveryLease.objects.filter(name=LEASE)
    previous = lease.values_list("holder_id", flat=True).first()
    claimed = lease.filter(Q(holder__isnull=True) | Q(expires_at__lt=now)).update(
        holder=run, expires_at=now + timedelta(seconds=settings.AUTOPATCH_DISCOVERY_LEASE_SECONDS)
    )
    if claimed != 1:
        return False
    if previous and previous != run.pk:
        DiscoveryRun.objects.filter(pk=previous, status=DiscoveryRun.Status.RUNNING).update(
            status=DiscoveryRun.Status.FAILED,
            finished_at=now,
            progress="",
            errors=[
                {"stage": "worker", "message": "The worker running this discovery stopped; its lease lapsed."}
            ],
        )
    return True


def lock_lease() -> None:
    """Hold the lease row until the transaction ends: starting, claiming and covering runs go one at a time."""
    DiscoveryLease.objects.get_or_create(name=LEASE)
    lease = DiscoveryLease.objects.filter(name=LEASE)
    if connection.features.has_select_for_update:
        lease.select_for_update().get()
    else:  # SQLite: a write makes the transaction hold the database's write lock (it may have begun DEFERRED)
        lease.update(expires_at=F("expires_at"))


def begin(run: DiscoveryRun, now: datetime) -> bool:
    """Start a queued run, or record which run does its work instead; True when this run goes ahead.

    A run that takes the lease covers every run still queued: it reads all they would have read, so they do
    not run after it. A run that finds the lease held is covered by its holder. A run already covered (its
    worker comes late) does nothing."""
    with transaction.atomic():
        lock_lease()
        if not DiscoveryRun.objects.filter(pk=run.pk, status=DiscoveryRun.Status.QUEUED).exists():
            return False
        if acquire_lease(run):
            DiscoveryRun.objects.filter(pk=run.pk).update(
                status=DiscoveryRun.Status.RUNNING, started_at=now, progress="Connecting to the tenant"
            )
            cover(
                DiscoveryRun.objects.filter(status=DiscoveryRun.Status.QUEUED).exclude(pk=run.pk),
                run,
                now,
                "started after this run was queued and does its work",
            )
            return True
        holder = DiscoveryRun.objects.get(discoverylease__name=LEASE)
        cover(DiscoveryRun.objects.filter(pk=run.pk), holder, now, "was under way and does this run's work")
        return False


def cover(runs: QuerySet[DiscoveryRun], by: DiscoveryRun, now: datetime, how: str) -> None:
    who = f" by {by.requested_by}" if by.requested_by else ""
    runs.update(
        status=DiscoveryRun.Status.COVERED,
        covered_by=by,
        finished_at=now,
        progress="",
        errors=[
            {
                "stage": "start",
                "message": f"Discovery run #{by.pk} ({by.get_trigger_display().lower()}{who}) {how}.",
            }
        ],
    )


def renew_lease(run: DiscoveryRun) -> None:
    expires = timezone.now() + timedelta(seconds=settings.AUTOPATCH_DISCOVERY_LEASE_SECONDS)
    DiscoveryLease.objects.filter(name=LEASE, holder=run).update(expires_at=expires)


def release_lease(run: DiscoveryRun) -> None:
    DiscoveryLease.objects.filter(name=LEASE, holder=run).update(holder=None, expires_at=None)


def active_run() -> DiscoveryRun | None:
    """The run under way or waiting for a worker, if any (a run whose worker died does not count)."""
    runs = DiscoveryRun.objects.in_progress()
    held = (
        DiscoveryLease.objects.filter(name=LEASE, holder__in=runs).values_list("holder_id", flat=True).first()
    )
    return runs.filter(pk=held).first() if held else runs.first()
