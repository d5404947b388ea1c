"""What one run keeps while it works: its errors, ignored members, counts and progress."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from ..models import DiscoveryRun
from .lease import renew_lease

MAX_IGNORED_LISTED = 100


class DiscoveryAborted(Exception):
    """The tenant could not be read completely enough to change anything."""


@dataclass
class RunState:
    run: DiscoveryRun
    now: datetime
    errors: list[dict[str, str]] = field(default_factory=list)
    ignored: list[dict[str, str]] = field(default_factory=list)
    ignored_counts: Counter[str] = field(default_factory=Counter)
    unreadable_groups: list[str] = field(default_factory=list)
    skipped_devices: set[str] = field(
        default_factory=set
    )  # a record of theirs was unsound: left as they were
    counts: Counter[str] = field(default_factory=Counter)
    # A stream read its collection in full (a first run, an expired link, Intune's daily read): every candidate
    # is evaluated. Otherwise only those whose inputs may have changed (devices.discovery.evaluation).
    full_read: bool = True

    def ignore(self, item: dict, reason: str, kind: str) -> None:
        self.ignored_counts[kind] += 1
        if len(self.ignored) < MAX_IGNORED_LISTED or kind == "group":
            self.ignored.append(
                {
                    "id": item.get("id", ""),
                    "name": item.get("displayName") or "",
                    "type": (item.get("@odata.type") or "").rsplit(".", 1)[-1],
                    "reason": reason,
                }
            )

    last_progress: float = 0.0

    def progress(self, text: str) -> None:
        """Tell the UI how far the run is, and renew the lease; at most once a second."""
        moment = time.monotonic()
        if moment - self.last_progress < 1:
            return
        self.last_progress = moment
        DiscoveryRun.objects.filter(pk=self.run.pk).update(progress=text[:256])
        renew_lease(self.run)
