"""Deployment rings: each newly registered device joins the ring furthest below its share."""

from __future__ import annotations

from collections import Counter

from ..models import Device, DiscoveryRun, ObjectKind, Ring, StagedObject

# Ring shares of First, Fast and Broad; Test is only ever assigned by an admin.
RING_SHARES_SMALL = {Ring.FIRST: 0.05, Ring.FAST: 0.15, Ring.BROAD: 0.80}
RING_SHARES_LARGE = {Ring.FIRST: 0.01, Ring.FAST: 0.09, Ring.BROAD: 0.90}
SMALL_TENANT = 200


def tenant_size(run: DiscoveryRun) -> int:
    """Devices the rings are shared among: registered ones plus candidates not registered yet."""
    registered = Device.objects.registered()
    members = StagedObject.objects.filter(run=run, kind=ObjectKind.CANDIDATE)
    return registered.count() + members.exclude(device_id__in=registered.values("azure_ad_device_id")).count()


class RingAssigner:
    """Deterministic rings: each new device joins the ring furthest below its share (Test is never automatic)."""

    def __init__(self, size: int):
        self.shares = RING_SHARES_SMALL if size <= SMALL_TENANT else RING_SHARES_LARGE
        counts = Counter(
            Device.objects.registered().filter(ring__in=self.shares).values_list("ring", flat=True)
        )
        self.counts = {ring: counts.get(ring, 0) for ring in self.shares}

    def next(self) -> str:
        total = sum(self.counts.values()) + 1
        ring = max(self.shares, key=lambda r: self.shares[r] * total - self.counts[r])
        self.counts[ring] += 1
        return ring
