"""Entra access tokens for the API (AUTOPATCH_AUTH=entra): the simulated tenant publishes its signing keys and
issues signed tokens to the applications of its tenant file, through MSAL's client credentials flow, and the portal
checks them with its real code; each way a token can be wrong is refused with a 401 that says which."""

from __future__ import annotations

import time

import msal
import pytest

from accounts.api import tokens
from accounts.models import AuditEvent
from autopatch_portal.tenant import connection
from autopatch_portal.tenant.simulated.api_tokens import new_private_key

from .api_client import ApiClient
from .blade_tenant import build_blade_tenant

ADMIN_ROLE, READER_ROLE = "Autopatch.ServiceAdministrator", "Autopatch.ServiceReader"


@pytest.fixture
def apps(settings, builder, use_tenant, db):
    settings.AUTOPATCH_AUTH = "entra"
    found = {
        "admin": builder.api_client("Windows 365 provisioning", roles=(ADMIN_ROLE,)),
        "reader": builder.api_client("Reporting", roles=(READER_ROLE,)),
        "none": builder.api_client("No roles"),
    }
    build_blade_tenant(builder, use_tenant)
    return found


def token_for(app: dict, resource: str | None = None) -> str:
    """A token as a client gets it: MSAL's client credentials flow against the tenant's token endpoint."""
    link = connection.transport()
    client = msal.ConfidentialClientApplication(
        app["clientId"],
        client_credential=app["clientSecret"],
        authority=link.authority,
        http_client=link.session,
        instance_discovery=False,
    )
    result = client.acquire_token_for_client(scopes=[f"{resource or 'api://' + link.client_id}/.default"])
    assert "access_token" in result, result
    return result["access_token"]


def forged(**changes) -> str:
    """A token signed by the tenant's key whose claims differ from a good one's by `changes` (None drops one)."""
    issuer = connection.transport().simulated.api_tokens
    claims = issuer.claims(connection.transport().client_id, "some-app", [ADMIN_ROLE])
    for name, value in changes.items():
        if value is None:
            claims.pop(name)
        else:
            claims[name] = value
    return issuer.sign(claims)


def test_an_app_with_the_administrator_role_may_act_and_is_audited(apps):
    admin = ApiClient(token_for(apps["admin"]))
    assert admin.api_get("/api/v1/devices").status_code == 200
    response = admin.api_post("/api/v1/discoveries")
    assert response.status_code == 202
    event = AuditEvent.objects.get(action=AuditEvent.Action.DISCOVERY, result="started")
    assert event.actor == f"entra:app {apps['admin']['clientId']}"


def test_the_reader_role_reads_and_no_role_reads_nothing(apps):
    reader = ApiClient(token_for(apps["reader"]))
    assert reader.api_get("/api/v1/devices").status_code == 200
    assert reader.api_post("/api/v1/discoveries").status_code == 403
    nobody = ApiClient(token_for(apps["none"]))
    assert nobody.api_get("/api/v1/devices").status_code == 403


def test_the_app_id_uri_and_the_bare_client_id_are_both_the_portals_audience(apps):
    link = connection.transport()
    assert (
        ApiClient(token_for(apps["admin"], resource=link.client_id)).api_get("/api/v1/devices").status_code
        == 200
    )
    assert ApiClient(forged(aud=f"api://{link.client_id}")).api_get("/api/v1/devices").status_code == 200


@pytest.mark.parametrize(
    ("token", "complaint"),
    [
        (lambda: "", "not_authenticated"),
        (lambda: "eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.c2ln", "malformed"),
        (lambda: "a.b.c", "malformed"),
        (lambda: forged(exp=int(time.time()) - 3600), "has expired"),
        (lambda: forged(nbf=int(time.time()) + 3600), "not valid yet"),
        (lambda: forged(aud="another-application"), "another application"),
        (
            lambda: forged(iss="https://login.microsoftonline.com/11111111-1111-1111-1111-111111111111/v2.0"),
            "another tenant",
        ),
        (lambda: forged(exp=None), "not valid"),
        (
            lambda: connection.transport().simulated.api_tokens.sign(forged_claims(), key=new_private_key()),
            "signature does not verify",
        ),
        (
            lambda: connection.transport().simulated.api_tokens.sign(
                forged_claims(), key=new_private_key(), kid="rolled-over-or-made-up"
            ),
            "unknown kid",
        ),
    ],
    ids=[
        "missing",
        "malformed",
        "garbage",
        "expired",
        "not-yet-valid",
        "wrong-audience",
        "wrong-issuer",
        "no-exp",
        "bad-signature",
        "unknown-kid",
    ],
)
def test_a_bad_token_is_a_401_that_says_why(apps, token, complaint):
    response = ApiClient(token() or None).api_get("/api/v1/devices")
    assert response.status_code == 401
    body = response.json()
    assert complaint in body["detail"] or complaint == body["code"], body


def forged_claims() -> dict:
    link = connection.transport()
    return link.simulated.api_tokens.claims(link.client_id, "some-app", [ADMIN_ROLE])


def test_signing_keys_are_fetched_once_and_again_for_an_unknown_kid(apps):
    tenant = connection.transport().simulated
    client = ApiClient(token_for(apps["reader"]))
    before = tenant.requests.copy()
    for _ in range(3):
        assert client.api_get("/api/v1/devices").status_code == 200
    keys = f"GET /{tenant.tenant_id}/discovery/v2.0/keys"
    assert tenant.requests[keys] - before[keys] <= 1
    # An unknown kid looks again (the tenant may have rolled its keys over), then not again for a while.
    made_up = tenant.api_tokens.sign(forged_claims(), kid="next-key")
    for _ in range(2):
        assert ApiClient(made_up).api_get("/api/v1/devices").status_code == 401
    assert tenant.requests[keys] - before[keys] <= 2


def test_a_wrong_client_secret_gets_no_token(apps):
    link = connection.transport()
    client = msal.ConfidentialClientApplication(
        apps["admin"]["clientId"],
        client_credential="guess",
        authority=link.authority,
        http_client=link.session,
        instance_discovery=False,
    )
    result = client.acquire_token_for_client(scopes=[f"api://{link.client_id}/.default"])
    assert result.get("error") == "invalid_client"


def test_tokens_are_refused_with_local_sign_in(apps, settings):
    token = token_for(apps["admin"])
    settings.AUTOPATCH_AUTH = "local"
    response = ApiClient(token).api_get("/api/v1/devices")
    assert response.status_code == 401 and "AUTOPATCH_AUTH=entra" in response.json()["detail"]


def test_the_roles_claim_maps_through_settings(apps, settings):
    settings.AUTOPATCH_API_READER_ROLE = "Custom.Reader"
    token = connection.transport().simulated.api_tokens.sign(
        connection.transport().simulated.api_tokens.claims(
            connection.transport().client_id, "x", ["Custom.Reader"]
        )
    )
    assert ApiClient(token).api_get("/api/v1/devices").status_code == 200
    assert tokens.principal({"roles": ["Autopatch.ServiceReader"], "azp": "x"}).capabilities == frozenset()
