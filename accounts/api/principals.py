"""Who calls the API, and what they may do: an API key, an Entra access token or a signed-in portal user."""

from __future__ import annotations

from dataclasses import dataclass

from ..roles import READINESS_ONLY, ROLE_API_CAPABILITIES, Role, role_of

# What each API key scope may do: administrator and reader keys are the two roles, readiness keys post reports.
SCOPE_CAPABILITIES: dict[str, frozenset[str]] = {
    "administrator": ROLE_API_CAPABILITIES[Role.ADMINISTRATOR],
    "reader": ROLE_API_CAPABILITIES[Role.READER],
    "readiness": READINESS_ONLY,
}


@dataclass(frozen=True)
class ApiPrincipal:
    """A caller that is not a portal user: `name` is what the audit log shows ("api-key:NAME", "entra:...")."""

    name: str
    capabilities: frozenset[str]
    is_authenticated: bool = True
    is_active: bool = True

    def get_username(self) -> str:
        return self.name


def capabilities_of(user) -> frozenset[str]:
    """What the caller of a request may do through the API."""
    if isinstance(user, ApiPrincipal):
        return user.capabilities
    if user is None or not getattr(user, "is_authenticated", False):
        return frozenset()
    role = role_of(user)
    return ROLE_API_CAPABILITIES.get(role, frozenset()) if role else frozenset()
