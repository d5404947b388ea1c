"""Recording audit events: one function that every view, task and command calls."""

from __future__ import annotations

import ipaddress
from typing import Any

from .models import AuditEvent


def actor_name(user: Any) -> str:
    if user is None:
        return "schedule"
    if isinstance(user, str):
        return user
    return user.get_username() if getattr(user, "is_authenticated", False) else "anonymous"


def client_ip(request: Any) -> str | None:
    """The address the request came from. Behind a proxy this is the proxy's unless the proxy sets REMOTE_ADDR."""
    value = request.META.get("REMOTE_ADDR", "") if request is not None else ""
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def record_event(
    actor: Any,
    action: str,
    /,
    *,
    target: str = "",
    result: str = "",
    request: Any = None,
    source_ip: str | None = None,
    **details: Any,
) -> AuditEvent:
    """Record that `actor` (a user, a name, or None for the schedule) did `action` on `target`, with `result`.

    Pass the request to keep the address it came from (or, for work a task carries out for a request, the address
    that request came from). Never pass secrets in details: the log is shown to admins.
    """
    return AuditEvent.objects.create(
        actor=actor_name(actor)[:256],
        action=action,
        target=target[:512],
        result=result[:512],
        details=details,
        source_ip=client_ip(request) if request is not None else source_ip,
    )
