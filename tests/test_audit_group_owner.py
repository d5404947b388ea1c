"""The seed's tip: a Service Administrator becomes an owner of the registration group, recorded in the audit log.
The registration group page lists the owners and offers the action only to an administrator who is not one."""

from __future__ import annotations

import pytest

from accounts.models import AuditEvent, EntraIdentity

from .portal_client import signed_in

pytestmark = pytest.mark.django_db
PAGE, BECOME = "/devices/registration-group/", "/devices/registration-group/owner/"


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


def test_an_administrator_becomes_owner_through_graph_and_is_then_listed(alice_in_entra, alice):
    tenant, entra_user = alice_in_entra
    client = signed_in(alice)
    page = client.get(PAGE).content.decode()
    assert "Make me an owner" in page and "The group has no owners" in page
    response = client.form_post(BECOME)
    assert response.status_code == 302
    assert entra_user["id"] in tenant.group_owners[tenant.registration_group_id]
    page = client.get(response["Location"]).content.decode()
    assert "You are now an owner of the registration group." in page
    assert "alice.admin@contoso.example" in page and "You are an owner of this group." in page
    assert "Make me an owner" not in page
    event = AuditEvent.objects.get(action="group_owner")
    assert (event.actor, event.result) == ("alice", "became owner")


def test_asking_twice_says_so(alice_in_entra, alice):
    client = signed_in(alice)
    client.form_post(BECOME)
    client.form_post(BECOME)
    assert [e.result for e in AuditEvent.objects.filter(action="group_owner").order_by("id")] == [
        "became owner",
        "already an owner",
    ]


def test_a_local_account_is_told_why_it_cannot(alice, builder, use_tenant):
    tenant = use_tenant(builder)
    response = signed_in(alice).form_post(BECOME)
    assert response.status_code == 400 and "local account" in response.content.decode()
    assert tenant.group_owners[tenant.registration_group_id] == []


def test_a_reader_sees_the_owners_but_cannot_become_one(bob, builder, use_tenant):
    owner = builder.user("Olga Owner")
    builder.registration_group["owners"] = [owner["id"]]
    tenant = use_tenant(builder)
    client = signed_in(bob)
    assert client.form_post(BECOME).status_code == 403
    page = client.get(PAGE)
    assert page.status_code == 200
    assert "Olga Owner" in page.content.decode() and "Make me an owner" not in page.content.decode()
    assert tenant.group_owners[tenant.registration_group_id] == [owner["id"]]
