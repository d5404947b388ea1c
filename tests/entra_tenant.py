"""The Entra ID sign-in tests' tenant: the two role groups and a user for each way to a role (or to none)."""

from __future__ import annotations

import pytest

from accounts.entra import GLOBAL_ADMINISTRATOR, INTUNE_ADMINISTRATOR

ADMIN_GROUP = "Modern Workplace Roles - Service Administrator"
READER_GROUP = "Modern Workplace Roles - Service Reader"


def upn(name: str) -> str:
    """The user principal name the TenantBuilder gives a user."""
    return f"{name.lower().replace(' ', '.')}@contoso.example"


def build_entra_tenant(builder, settings):
    """Role groups and users in `builder`, the portal signing in through Entra ID with those groups."""
    settings.AUTOPATCH_AUTH = "entra"
    admins, readers = builder.group(ADMIN_GROUP), builder.group(READER_GROUP)
    settings.AUTOPATCH_ADMIN_GROUP_ID, settings.AUTOPATCH_READER_GROUP_ID = admins["id"], readers["id"]
    builder.user("Grace Global", wids=(GLOBAL_ADMINISTRATOR,))
    builder.user("Ian Intune", wids=(INTUNE_ADMINISTRATOR, "b79fbf4d-3ef9-4689-8143-76b194e85509"))
    builder.user("Ada Admingroup", member_of=admins)
    builder.user("Rita Reader", member_of=readers)
    builder.user("Nina Nobody", wids=("7698a772-787b-4ac8-901f-60d6b08affd2",))  # Cloud Device Administrator
    return builder


@pytest.fixture
def entra(settings, builder):
    """The builder with the sign-in tests' users; write it with use_tenant (after any change a test makes)."""
    return build_entra_tenant(builder, settings)
