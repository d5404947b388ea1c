"""Failed sign-in throttling, counted from the audit log so that every web worker sees the same count."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.forms import UsernameField
from django.utils import timezone

from .models import AuditEvent


@dataclass
class Lockout:
    minutes: int  # how long until another try is allowed, rounded up

    @property
    def message(self) -> str:
        unit = "minute" if self.minutes == 1 else "minutes"
        return f"Too many failed sign-ins. Try again in {self.minutes} {unit}."


def account_name(typed: str) -> str:
    """The account name as Django's login form signs in with it: stripped and NFKC-normalised, so that
    look-alikes such as fullwidth "ｄｅｍｏ-ａｄｍｉｎ" are the account they sign in to, and share its count. NUL
    characters are dropped: the form refuses them, PostgreSQL cannot store them, and a name with them counts as the
    name without."""
    return str(UsernameField().to_python(typed) or "").replace("\x00", "")[:256]


def lockout(username: str, ip: str | None) -> Lockout | None:
    """A lockout when the account name, or the address, failed too often within the window.

    A successful sign-in of the account ends its count; an address's count only ages out.
    """
    window = timedelta(minutes=settings.AUTOPATCH_LOGIN_LOCKOUT_MINUTES)
    now = timezone.now()
    since = now - window
    failures = AuditEvent.objects.filter(action=AuditEvent.Action.SIGN_IN_FAILED, at__gte=since)
    name = account_name(username).lower()
    last_success = (
        AuditEvent.objects.filter(action=AuditEvent.Action.SIGN_IN, actor__iexact=name, at__gte=since)
        .values_list("at", flat=True)
        .first()
    )
    by_name = failures.filter(actor__iexact=name)
    if last_success is not None:
        by_name = by_name.filter(at__gt=last_success)
    checks = [(by_name, settings.AUTOPATCH_LOGIN_MAX_FAILURES)]
    if ip:
        checks.append((failures.filter(source_ip=ip), settings.AUTOPATCH_LOGIN_MAX_FAILURES_PER_IP))
    for events, limit in checks:
        recent = list(events.order_by("-at").values_list("at", flat=True)[:limit])
        if len(recent) >= limit:
            # Locked until the oldest of the last `limit` failures leaves the window.
            remaining = recent[-1] + window - now
            return Lockout(max(1, -(-int(remaining.total_seconds()) // 60)))
    return None
