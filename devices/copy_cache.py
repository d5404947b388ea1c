"""Reads of the portal's copy of the tenant, kept in the cache for the discovery run that ended last.

The copy (TenantObject) changes only as a run reads the tenant, and the pages that read it say which run's reading
they show: each such read is made once after a run ends, not on every view. A run under way changes the copy before
it ends; the pages go on showing the last run's reading until it has ended. Before any run has ended, every view
reads the copy."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from django.core.cache import cache

from .models import DiscoveryRun

T = TypeVar("T")

# How long a run's reading stays cached; the next run's key replaces it long before then.
COPY_READ_SECONDS = 24 * 3600


def last_finished_run() -> DiscoveryRun | None:
    return DiscoveryRun.objects.ran().filter(finished_at__isnull=False).first()


def read_for_last_run(name: str, read: Callable[[], T], last_run: DiscoveryRun | None) -> T:
    """`read()`, cached as `name` for `last_run` (the run that ended last)."""
    if last_run is None or last_run.finished_at is None:
        return read()
    key = f"copy-read:{name}:{last_run.pk}:{last_run.finished_at.timestamp()}"
    value = cache.get(key)
    if value is None:
        value = read()
        cache.set(key, value, COPY_READ_SECONDS)
    return value
