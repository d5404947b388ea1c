"""The lease that keeps discovery runs from overlapping, and what counts as a run in progress."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import Q
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
            status=DiscoveryRun.Status.FAILED, finished_at=now, progress="",
            errors=[{"stage": "worker", "message": "The worker running this discovery stopped; its lease lapsed."}],
        )  # fmt: skip
    return True


def renew_lease(run: DiscoveryRun) -> None:
    expires = timezone.now() + timedelta(seconds=settings.AUTOPATCH_DISCOVERY_LEASE_SECONDS)
    DiscoveryLease.objects.filter(name=LEASE, holder=run).update(expires_at=expires)


def release_lease(run: DiscoveryRun) -> None:
    DiscoveryLease.objects.filter(name=LEASE, holder=run).update(holder=None, expires_at=None)


def active_run() -> DiscoveryRun | None:
    """The run under way or waiting for a worker, if any (a run whose worker died does not count)."""
    runs = DiscoveryRun.objects.in_progress()
    held = DiscoveryLease.objects.filter(name=LEASE, holder__in=runs).values_list("holder_id", flat=True).first()
    return runs.filter(pk=held).first() if held else runs.first()
