"""The seed's tip: a Service Administrator becomes an owner of the registration group, recorded in the audit log."""

from __future__ import annotations

import pytest

from accounts.models import AuditEvent, EntraIdentity

from .portal_client import signed_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice_in_entra(alice, builder, use_tenant):
    entra_user = builder.user("Alice Admin")
    tenant = use_tenant(builder)
    EntraIdentity.objects.create(
        user=alice,
        tenant_id=tenant.tenant_id,
        object_id=entra_user["id"],
        user_principal_name=entra_user["userPrincipalName"],
    )
    return tenant, entra_user


def test_an_administrator_becomes_owner_through_graph(alice_in_entra, alice):
    tenant, entra_user = alice_in_entra
    client = signed_in(alice)
    assert "Make me an owner" in client.get("/accounts/registration-group-owner/").content.decode()
    response = client.form_post("/accounts/registration-group-owner/become/")
    assert response.status_code == 302
    assert entra_user["id"] in tenant.group_owners[tenant.registration_group_id]
    assert (
        "You are an owner of Windows Autopatch Device Registration."
        in client.get(response["Location"]).content.decode()
    )
    event = AuditEvent.objects.get(action="group_owner")
    assert (event.actor, event.result) == ("alice", "became owner")


def test_asking_twice_says_so(alice_in_entra, alice):
    client = signed_in(alice)
    client.form_post("/accounts/registration-group-owner/become/")
    client.form_post("/accounts/registration-group-owner/become/")
    assert [e.result for e in AuditEvent.objects.filter(action="group_owner").order_by("id")] == [
        "became owner",
        "already an owner",
    ]


def test_a_local_account_is_told_why_it_cannot(alice, builder, use_tenant):
    tenant = use_tenant(builder)
    response = signed_in(alice).form_post("/accounts/registration-group-owner/become/")
    assert response.status_code == 400 and "local account" in response.content.decode()
    assert tenant.group_owners[tenant.registration_group_id] == []


def test_a_reader_is_refused(bob, builder, use_tenant):
    tenant = use_tenant(builder)
    assert signed_in(bob).form_post("/accounts/registration-group-owner/become/").status_code == 403
    assert signed_in(bob).get("/accounts/registration-group-owner/").status_code == 403
    assert tenant.group_owners[tenant.registration_group_id] == []
