"""Recording audit events: one function that every view, task and command calls."""

from __future__ import annotations

from typing import Any

from .models import AuditEvent


def actor_name(user: Any) -> str:
    if user is None:
        return "schedule"
    if isinstance(user, str):
        return user
    return user.get_username() if getattr(user, "is_authenticated", False) else "anonymous"


def record_event(actor: Any, action: str, *, target: str = "", result: str = "", **details: Any) -> AuditEvent:
    """Record that `actor` (a user, a name, or None for the schedule) did `action` on `target`, with `result`."""
    return AuditEvent.objects.create(actor=actor_name(actor)[:256], action=action, target=target[:512],
                                     result=result[:512], details=details)  # fmt: skip
