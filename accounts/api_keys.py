"""API keys: issue and revoke, shared by the Administration page and `manage.py create_api_key`."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone

from .audit import record_event
from .models import ApiKey, AuditEvent

MAX_NAME = 100


class KeyRefused(ValueError):
    """A name that is empty, too long or taken; a scope that is none."""


def create_key(name: str, scope: str, actor, request=None) -> tuple[ApiKey, str]:
    """A new key named `name` with `scope`; returns the row and the key, which is shown once and never stored."""
    name = name.strip()
    if not name or len(name) > MAX_NAME or "\x00" in name:
        raise KeyRefused(f"Name the key (1 to {MAX_NAME} characters), for example after what will use it.")
    if scope not in ApiKey.Scope.values:
        raise KeyRefused(f"The scope must be one of {', '.join(ApiKey.Scope.values)}.")
    try:
        with transaction.atomic():
            row, key = ApiKey.issue(
                name, scope, created_by=getattr(actor, "get_username", lambda: str(actor))()
            )
    except IntegrityError as exc:
        raise KeyRefused(f"A key named {name!r} exists already (revoked keys keep their names).") from exc
    record_event(
        actor,
        AuditEvent.Action.API_KEY,
        target=name,
        result=f"created ({scope})",
        request=request,
        prefix=row.prefix,
    )
    return row, key


def revoke_key(pk: int, actor, request=None) -> ApiKey | None:
    """Revoke a key at once (the next request with it is refused); None if there is no such key."""
    row = ApiKey.objects.filter(pk=pk).first()
    if row is None:
        return None
    changed = ApiKey.objects.filter(pk=pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now(), revoked_by=getattr(actor, "get_username", lambda: str(actor))()
    )
    if changed:
        record_event(
            actor,
            AuditEvent.Action.API_KEY,
            target=row.name,
            result="revoked",
            request=request,
            prefix=row.prefix,
        )
    row.refresh_from_db()
    return row
