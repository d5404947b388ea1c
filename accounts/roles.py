"""The portal's roles and what each may do: the seed's role table, in one place."""

from __future__ import annotations

from typing import cast

from django.contrib.auth.models import Group, Permission
from django.db import models


class Role(models.TextChoices):
    ADMINISTRATOR = "administrator", "Service Administrator"
    READER = "reader", "Service Reader"


class Capability(models.TextChoices):
    DISCOVER_DEVICES = "discover_devices", "Discover devices"
    MODIFY_COLUMNS = "modify_columns", "Modify columns"
    REFRESH_DEVICE_LIST = "refresh_device_list", "Refresh device list"
    EXPORT_DEVICES = "export_devices", "Export to .CSV"
    DEVICE_ACTIONS = "device_actions", "Device actions"


ROLE_CAPABILITIES: dict[str, frozenset[str]] = {
    Role.ADMINISTRATOR: frozenset(Capability.values),
    Role.READER: frozenset(
        {Capability.MODIFY_COLUMNS, Capability.REFRESH_DEVICE_LIST, Capability.EXPORT_DEVICES}
    ),
}

# The API's one capability beyond the role table: posting device-side readiness reports. Service
# Administrators have it; readiness keys (and tokens with the readiness app role) have it alone.
REPORT_READINESS = "report_readiness"
ROLE_API_CAPABILITIES: dict[str, frozenset[str]] = {
    Role.ADMINISTRATOR: ROLE_CAPABILITIES[Role.ADMINISTRATOR] | {REPORT_READINESS},
    Role.READER: ROLE_CAPABILITIES[Role.READER],
}
READINESS_ONLY: frozenset[str] = frozenset({REPORT_READINESS})


def role_group(role: str) -> Group:
    """The Django group of a role, created with exactly the role's permissions."""
    group, _ = Group.objects.get_or_create(name=Role(role).label)
    permissions = Permission.objects.filter(
        content_type__app_label="devices", codename__in=ROLE_CAPABILITIES[role]
    )
    group.permissions.set(permissions)
    return group


def assign_role(user, role: str | None) -> None:
    """Give the user exactly one role (or none): roles are re-read at every sign-in."""
    role_groups = Group.objects.filter(name__in=Role.labels)
    user.groups.remove(*role_groups)
    if role:
        user.groups.add(role_group(role))
    if getattr(user, "_portal_role", UNREAD) is not UNREAD:
        del user._portal_role


UNREAD = object()


def role_of(user) -> str | None:
    """The user's role, read once per user object (a request's access checks and its pages ask several times)."""
    if not user.is_authenticated:
        return None
    kept = getattr(user, "_portal_role", UNREAD)  # (getattr: request.user is a lazy object around the user)
    if kept is not UNREAD:
        return cast("str | None", kept)
    names = set(user.groups.values_list("name", flat=True))
    role = next((r.value for r in (Role.ADMINISTRATOR, Role.READER) if r.label in names), None)
    user._portal_role = role
    return role
