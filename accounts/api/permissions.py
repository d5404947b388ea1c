"""API permissions: each view names the one capability it needs (the seed's role table, accounts.roles)."""

from __future__ import annotations

from functools import cache

from rest_framework.permissions import BasePermission

from .principals import capabilities_of


class NoAccess(BasePermission):
    """The default: a view that names no capability is open to nobody."""

    message = "This endpoint is not open to anyone."

    def has_permission(self, request, view) -> bool:
        return False


@cache
def requires(capability: str) -> type[BasePermission]:
    """A permission class that lets through callers whose role, key scope or app role has `capability`."""

    class Requires(BasePermission):
        message = f"Your role or key scope does not allow: {capability.replace('_', ' ')}."

        def has_permission(self, request, view) -> bool:
            return capability in capabilities_of(request.user)

    Requires.__name__ = f"Requires_{capability}"
    return Requires
