"""Entra ID sign-in end to end: MSAL's real code against the simulated tenant, through the connector's transport swap."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from accounts.entra import GLOBAL_ADMINISTRATOR, INTUNE_ADMINISTRATOR, signin_config
from accounts.models import AuditEvent, EntraIdentity
from autopatch_portal.tenant.connection import SIMULATED_CLIENT_ID
from autopatch_portal.tenant.simulated import signin as simulated_signin

from .portal_client import PortalClient

pytestmark = pytest.mark.django_db

ADMIN_GROUP = "Modern Workplace Roles - Service Administrator"
READER_GROUP = "Modern Workplace Roles - Service Reader"


@pytest.fixture
def entra(settings, builder, use_tenant):
    """A tenant with role groups and users, sign-in through Entra ID turned on; returns (builder, setup)."""
    settings.AUTOPATCH_AUTH = "entra"
    admins, readers = builder.group(ADMIN_GROUP), builder.group(READER_GROUP)
    settings.AUTOPATCH_ADMIN_GROUP_ID, settings.AUTOPATCH_READER_GROUP_ID = admins["id"], readers["id"]
    builder.user("Grace Global")["wids"] = [GLOBAL_ADMINISTRATOR]
    builder.user("Ian Intune")["wids"] = [INTUNE_ADMINISTRATOR, "b79fbf4d-3ef9-4689-8143-76b194e85509"]
    builder.user("Ada Admingroup", member_of=admins)
    builder.user("Rita Reader", member_of=readers)
    builder.user("Nina Nobody")["wids"] = ["7698a772-787b-4ac8-901f-60d6b08affd2"]  # Cloud Device Administrator
    return builder


def upn(name: str) -> str:
    return f"{name.lower().replace(' ', '.')}@contoso.example"


def entra_sign_in(client: PortalClient, who: str, tamper=None):
    """Click "Sign in with Microsoft", sign in at Entra's authorize endpoint as `who`, come back to the portal."""
    start = client.get("/accounts/entra/start/")
    assert start.status_code == 302
    location = start["Location"]
    assert location.startswith("/accounts/entra/simulated-sign-in/?")
    query = parse_qs(urlsplit(location).query)
    assert query["code_challenge_method"] == ["S256"] and query["code_challenge"][0] and query["nonce"][0]
    assert query["state"][0] and query["client_id"] == [SIMULATED_CLIENT_ID]
    # Microsoft's page, as the simulated tenant answers it over the transport.
    config = signin_config()
    authorize = f"{config.authority}/oauth2/v2.0/authorize?{urlsplit(location).query}&login_hint={upn(who)}"
    answer = config.session.get(authorize, allow_redirects=False)
    assert answer.status_code == 302
    back = urlsplit(answer.headers["Location"])
    assert back.path == "/accounts/entra/callback/"
    params = {k: v[-1] for k, v in parse_qs(back.query).items()}
    if tamper:
        params = tamper(params)
    return client.get("/accounts/entra/callback/", params)


def test_the_login_page_offers_microsoft_only(entra):
    html = PortalClient().get("/accounts/login/").content.decode()
    assert "Sign in with Microsoft" in html and 'name="password"' not in html


def test_password_posts_are_refused_when_entra_is_on(entra, alice):
    client = PortalClient()
    assert client.form_post("/accounts/login/", {"username": "alice", "password": "x"}).status_code == 405


@pytest.mark.parametrize("who", ["Grace Global", "Ian Intune", "Ada Admingroup"])
def test_global_and_intune_administrators_and_the_admin_group_are_service_administrators(entra, use_tenant, who):
    use_tenant(entra)
    client = PortalClient()
    response = entra_sign_in(client, who)
    assert response.status_code == 302 and response["Location"] == "/devices/ready/"
    page = client.get("/devices/ready/")
    assert page.status_code == 200 and "Service Administrator" in page.content.decode()
    event = AuditEvent.objects.get(action=AuditEvent.Action.SIGN_IN)
    assert (event.actor, event.target, event.result) == (upn(who), "Entra ID", "Service Administrator")


def test_the_reader_group_makes_a_service_reader(entra, use_tenant):
    use_tenant(entra)
    client = PortalClient()
    entra_sign_in(client, "Rita Reader")
    page = client.get("/devices/ready/")
    assert page.status_code == 200 and "Service Reader" in page.content.decode()
    assert client.htmx_post("/devices/discover/").status_code == 403


def test_anyone_else_gets_the_no_access_page(entra, use_tenant):
    use_tenant(entra)
    client = PortalClient()
    response = entra_sign_in(client, "Nina Nobody")
    assert response["Location"] == "/accounts/no-access/"
    assert client.get("/devices/ready/").status_code == 403
    assert AuditEvent.objects.get(action=AuditEvent.Action.SIGN_IN).result == "no role"


def test_group_overage_is_resolved_through_graph(entra, use_tenant):
    reader = next(u for u in entra.users if u["displayName"] == "Rita Reader")
    for index in range(5):
        entra.group(f"Project team {index}")["members"].append(reader["id"])
    tenant = use_tenant(entra)
    simulated_signin.install(tenant).groups_claim_limit = 3
    client = PortalClient()
    entra_sign_in(client, "Rita Reader")
    claims = tenant.signin.issued[-1]
    assert "groups" not in claims and claims["_claim_names"] == {"groups": "src1"}
    assert tenant.requests[f"POST /v1.0/users/{reader['id']}/getMemberGroups"] == 1
    assert "Service Reader" in client.get("/devices/ready/").content.decode()


def test_a_wrong_state_is_refused_and_nobody_is_signed_in(entra, use_tenant):
    use_tenant(entra)
    client = PortalClient()
    response = entra_sign_in(client, "Grace Global", tamper=lambda p: {**p, "state": "forged"})
    assert response.status_code == 400
    assert "state mismatch" in response.content.decode()
    assert client.get("/devices/ready/").status_code == 302
    assert AuditEvent.objects.filter(action=AuditEvent.Action.SIGN_IN).count() == 0
    assert AuditEvent.objects.get(action=AuditEvent.Action.SIGN_IN_FAILED).target == "Entra ID"


def test_an_id_token_for_another_application_is_refused(entra, use_tenant):
    tenant = use_tenant(entra)
    simulated_signin.install(tenant).claim_overrides = {"aud": "11111111-2222-4333-8444-555555555555"}
    client = PortalClient()
    response = entra_sign_in(client, "Grace Global")
    assert response.status_code == 400
    assert "issued to another application" in response.content.decode()
    assert client.get("/devices/ready/").status_code == 302


def test_an_id_token_from_another_tenant_is_refused(entra, use_tenant):
    tenant = use_tenant(entra)
    simulated_signin.install(tenant).claim_overrides = {"iss": "https://login.microsoftonline.com/other/v2.0"}
    response = entra_sign_in(PortalClient(), "Grace Global")
    assert response.status_code == 400 and "another tenant" in response.content.decode()


def test_a_nonce_that_does_not_match_is_refused(entra, use_tenant):
    tenant = use_tenant(entra)
    simulated_signin.install(tenant).claim_overrides = {"nonce": "replayed"}
    response = entra_sign_in(PortalClient(), "Grace Global")
    assert response.status_code == 400 and "nonce mismatch" in response.content.decode()


def test_a_code_cannot_be_used_twice(entra, use_tenant):
    use_tenant(entra)
    client = PortalClient()
    seen = {}

    def keep(params):
        seen.update(params)
        return params

    assert entra_sign_in(client, "Rita Reader", tamper=keep).status_code == 302
    thief = PortalClient()
    thief.get("/accounts/entra/start/")
    assert thief.get("/accounts/entra/callback/", seen).status_code == 400
    assert thief.get("/devices/ready/").status_code == 302


def test_an_error_from_entra_is_shown_and_recorded(entra, use_tenant):
    use_tenant(entra)
    client = PortalClient()
    client.get("/accounts/entra/start/")
    state = client.session["entra_flow"]["state"]
    response = client.get("/accounts/entra/callback/", {"error": "access_denied", "state": state,
                                                        "error_description": "AADSTS65004: User declined to consent."})  # fmt: skip
    assert response.status_code == 400 and "User declined to consent" in response.content.decode()


def test_a_callback_without_a_started_sign_in_is_refused(entra, use_tenant):
    use_tenant(entra)
    response = PortalClient().get("/accounts/entra/callback/", {"code": "x", "state": "y"})
    assert response.status_code == 400 and "not started in this browser" in response.content.decode()


def test_roles_are_read_again_at_every_sign_in(entra, use_tenant, settings):
    use_tenant(entra)
    client = PortalClient()
    entra_sign_in(client, "Ada Admingroup")
    assert client.get("/devices/ready/").status_code == 200
    client.form_post("/accounts/logout/")
    admins = entra.groups_by_name[ADMIN_GROUP]
    ada = next(u for u in entra.users if u["displayName"] == "Ada Admingroup")
    admins["members"].remove(ada["id"])
    use_tenant(entra)
    assert entra_sign_in(client, "Ada Admingroup")["Location"] == "/accounts/no-access/"
    assert client.get("/devices/ready/").status_code == 403
    assert EntraIdentity.objects.get(user_principal_name=upn("Ada Admingroup")).object_id == ada["id"]


def test_the_token_cache_lives_in_the_session_and_sign_out_drops_it(entra, use_tenant):
    use_tenant(entra)
    client = PortalClient()
    entra_sign_in(client, "Grace Global")
    assert "RefreshToken" in client.session["entra_token_cache"]
    client.form_post("/accounts/logout/")
    assert "entra_token_cache" not in client.session
    assert AuditEvent.objects.filter(action=AuditEvent.Action.SIGN_OUT, actor=upn("Grace Global")).exists()


def test_the_simulated_sign_in_page_lists_the_tenants_users_and_signs_in(entra, use_tenant):
    use_tenant(entra)
    client = PortalClient()
    page = client.get(client.get("/accounts/entra/start/")["Location"])
    assert page.status_code == 200 and upn("Rita Reader") in page.content.decode()
    answer = client.post(page.request["PATH_INFO"] + "?" + page.request["QUERY_STRING"],
                         {"login_hint": upn("Rita Reader"), "csrfmiddlewaretoken": client.csrf_token()})  # fmt: skip
    assert answer.status_code == 302 and answer["Location"].startswith("http://testserver/accounts/entra/callback/?code=")
    assert client.get(answer["Location"]).status_code == 302
    assert client.get("/devices/ready/").status_code == 200


def test_entra_pages_do_not_exist_with_local_accounts():
    assert PortalClient().get("/accounts/entra/start/").status_code == 404
