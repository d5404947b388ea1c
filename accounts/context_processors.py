"""Template context of sign-in: the signed-in user's portal role, for navigation and menus."""

from __future__ import annotations

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from .roles import Role, role_of


def portal_role(request: HttpRequest) -> dict:
    def label() -> str:
        role = role_of(request.user) if hasattr(request, "user") else None
        return Role(role).label if role else ""

    def is_admin() -> bool:
        return hasattr(request, "user") and role_of(request.user) == Role.ADMINISTRATOR

    return {"portal_role_label": SimpleLazyObject(label), "portal_is_admin": SimpleLazyObject(is_admin)}
