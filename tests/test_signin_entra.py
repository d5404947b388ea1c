"""Entra ID sign-in end to end: MSAL's real code against the simulated tenant, through the connector's transport swap."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from django.conf import settings

from accounts.entra import GLOBAL_ADMINISTRATOR, signin_config
from accounts.models import AuditEvent, EntraIdentity
from accounts.views.entra_signin import read_form_post
from autopatch_portal.tenant.connection import SIMULATED_CLIENT_ID
from autopatch_portal.tenant.simulated import TenantFileError
from autopatch_portal.tenant.simulated import signin as simulated_signin

from .entra_tenant import ADMIN_GROUP, READER_GROUP, upn
from .portal_client import PortalClient

pytestmark = pytest.mark.django_db


def entra_answer(client: PortalClient, who: str) -> dict[str, str]:
    """Click "Sign in with Microsoft" and sign in at Entra's authorize endpoint as `who`: the fields of the
    form Entra's page posts back to the portal (response_mode=form_post)."""
    start = client.get("/accounts/entra/start/")
    assert start.status_code == 302
    location = start["Location"]
    assert location.startswith("/accounts/entra/simulated-sign-in/?")
    query = parse_qs(urlsplit(location).query)
    assert query["code_challenge_method"] == ["S256"] and query["code_challenge"][0] and query["nonce"][0]
    assert (
        query["state"][0]
        and query["client_id"] == [SIMULATED_CLIENT_ID]
        and query["response_mode"] == ["form_post"]
    )
    # Microsoft's page, as the simulated tenant answers it over the transport.
    config = signin_config()
    authorize = f"{config.authority}/oauth2/v2.0/authorize?{urlsplit(location).query}&login_hint={upn(who)}"
    answer = config.session.get(authorize, allow_redirects=False)
    assert answer.status_code == 200 and "document.forms[0].submit()" in answer.text
    action, fields = read_form_post(answer.text)
    assert action == "http://testserver/accounts/entra/callback/"
    return fields


def entra_sign_in(client: PortalClient, who: str, tamper=None):
    """Sign in as `who` and post Entra's answer back as a browser does: a cross-site POST, so without the
    portal's SameSite=Lax session cookie."""
    fields = entra_answer(client, who)
    if tamper:
        fields = tamper(fields)
    client.cookies.pop(settings.SESSION_COOKIE_NAME, None)
    return client.post("/accounts/entra/callback/", fields)


def test_the_login_page_offers_microsoft_only(entra):
    html = PortalClient().get("/accounts/login/").content.decode()
    assert "Sign in with Microsoft" in html and 'name="password"' not in html


def test_password_posts_are_refused_when_entra_is_on(entra, alice):
    client = PortalClient()
    assert client.form_post("/accounts/login/", {"username": "alice", "password": "x"}).status_code == 405


@pytest.mark.parametrize("who", ["Grace Global", "Ian Intune", "Ada Admingroup"])
def test_global_and_intune_administrators_and_the_admin_group_are_service_administrators(
    entra, use_tenant, who
):
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


def check_member_groups_calls(tenant) -> int:
    return tenant.requests["POST /v1.0/me/checkMemberGroups"]


def test_group_overage_is_resolved_through_graph_as_the_user(entra, use_tenant):
    reader = next(u for u in entra.users if u["displayName"] == "Rita Reader")
    for index in range(5):
        entra.group(f"Project team {index}")["members"].append(reader["id"])
    tenant = use_tenant(entra)
    simulated_signin.install(tenant).groups_claim_limit = 3
    client = PortalClient()
    entra_sign_in(client, "Rita Reader")
    claims = tenant.signin.issued[-1]
    assert "groups" not in claims and claims["_claim_names"] == {"groups": "src1"}
    assert check_member_groups_calls(tenant) == 1
    assert "Service Reader" in client.get("/devices/ready/").content.decode()


def without_group_claims(builder, setting: str = "None") -> dict:
    """The tenant file, its app registration asking for no groups or wids claims (a new registration's default)."""
    data = builder.as_json()
    data["appRegistration"] = {"groupMembershipClaims": setting}
    return data


@pytest.mark.parametrize(
    ("who", "role"), [("Ada Admingroup", "Service Administrator"), ("Rita Reader", "Service Reader")]
)
def test_without_a_groups_claim_the_role_groups_are_checked_through_graph(entra, use_tenant, who, role):
    tenant = use_tenant(without_group_claims(entra))
    client = PortalClient()
    entra_sign_in(client, who)
    assert "groups" not in tenant.signin.issued[-1] and "wids" not in tenant.signin.issued[-1]
    assert check_member_groups_calls(tenant) == 1
    assert role in client.get("/devices/ready/").content.decode()


def test_membership_through_a_nested_group_counts(entra, use_tenant):
    team = entra.group("Workplace team")
    entra.groups_by_name[READER_GROUP]["members"].append(team["id"])
    entra.user("Nora Nested", member_of=team)
    use_tenant(without_group_claims(entra))
    client = PortalClient()
    entra_sign_in(client, "Nora Nested")
    assert "Service Reader" in client.get("/devices/ready/").content.decode()


def test_without_wids_a_global_administrator_needs_a_role_group(entra, use_tenant):
    tenant = use_tenant(without_group_claims(entra))
    response = entra_sign_in(PortalClient(), "Grace Global")
    assert response["Location"] == "/accounts/no-access/"
    assert check_member_groups_calls(tenant) == 1


def test_directory_roles_alone_are_sent_when_the_app_registration_asks_for_them(entra, use_tenant):
    tenant = use_tenant(without_group_claims(entra, "DirectoryRole"))
    client = PortalClient()
    assert entra_sign_in(client, "Grace Global")["Location"] == "/devices/ready/"
    assert (
        tenant.signin.issued[-1]["wids"] == [GLOBAL_ADMINISTRATOR] and check_member_groups_calls(tenant) == 0
    )


def test_a_groups_claim_answers_without_asking_graph(entra, use_tenant):
    tenant = use_tenant(entra)
    entra_sign_in(PortalClient(), "Rita Reader")
    assert tenant.signin.issued[-1]["groups"] and check_member_groups_calls(tenant) == 0


def test_the_sign_in_asks_for_group_member_read_only_when_role_groups_are_configured(
    entra, use_tenant, settings
):
    use_tenant(entra)
    location = PortalClient().get("/accounts/entra/start/")["Location"]
    assert "GroupMember.Read.All" in parse_qs(urlsplit(location).query)["scope"][0]
    settings.AUTOPATCH_ADMIN_GROUP_ID = settings.AUTOPATCH_READER_GROUP_ID = ""
    location = PortalClient().get("/accounts/entra/start/")["Location"]
    assert "GroupMember.Read.All" not in parse_qs(urlsplit(location).query)["scope"][0]


def test_a_refused_group_check_refuses_the_sign_in_and_says_why(entra, use_tenant, settings):
    settings.AUTOPATCH_GRAPH_BACKOFF_MS = 1
    tenant = use_tenant(without_group_claims(entra))
    tenant.inject("/v1.0/me/checkMemberGroups", 503, times=10, method="POST")
    client = PortalClient()
    response = entra_sign_in(client, "Rita Reader")
    assert response.status_code == 400 and "group memberships could not be read" in response.content.decode()
    assert client.get("/devices/ready/").status_code == 302
    assert check_member_groups_calls(tenant) == 2  # one retry: someone is waiting


def test_an_unknown_group_membership_claims_setting_is_a_clear_error(entra, use_tenant):
    use_tenant(without_group_claims(entra, "Everything"))
    with pytest.raises(TenantFileError, match="groupMembershipClaims must be one of"):
        PortalClient().get("/accounts/entra/start/")


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
    assert thief.post("/accounts/entra/callback/", seen).status_code == 400
    assert thief.get("/devices/ready/").status_code == 302
    again = client.post("/accounts/entra/callback/", seen)  # the same browser, replaying its own answer
    assert again.status_code == 400 and "already used" in again.content.decode()


def test_an_error_from_entra_is_shown_and_recorded(entra, use_tenant):
    use_tenant(entra)
    client = PortalClient()
    state = entra_answer(client, "Nobody At All")["state"]
    response = client.post(
        "/accounts/entra/callback/",
        {
            "error": "access_denied",
            "state": state,
            "error_description": "AADSTS65004: User declined to consent.",
        },
    )
    assert response.status_code == 400 and "User declined to consent" in response.content.decode()
    assert AuditEvent.objects.get(action=AuditEvent.Action.SIGN_IN_FAILED).result.endswith(
        "User declined to consent."
    )


def test_a_callback_without_a_started_sign_in_is_refused(entra, use_tenant):
    use_tenant(entra)
    response = PortalClient().post("/accounts/entra/callback/", {"code": "x", "state": "y"})
    assert response.status_code == 400 and "not started in this browser" in response.content.decode()


def test_an_answer_posted_from_another_browser_is_refused(entra, use_tenant):
    """Login CSRF: someone else's valid answer, posted by a page into this browser, signs nobody in."""
    use_tenant(entra)
    fields = entra_answer(PortalClient(), "Grace Global")
    victim = PortalClient()
    response = victim.post("/accounts/entra/callback/", fields)
    assert response.status_code == 400 and "not started in this browser" in response.content.decode()
    assert victim.get("/devices/ready/").status_code == 302


def test_the_flow_cookie_comes_with_a_cross_site_post_and_only_to_the_callback(entra, use_tenant, settings):
    settings.SESSION_COOKIE_SECURE = True
    use_tenant(entra)
    cookie = PortalClient().get("/accounts/entra/start/").cookies["entra_signin"]
    assert cookie["samesite"] == "None" and cookie["secure"] and cookie["httponly"]
    assert cookie["path"] == "/accounts/entra/callback/" and int(cookie["max-age"]) == 600


def test_the_callback_takes_posts_only(entra, use_tenant):
    use_tenant(entra)
    assert PortalClient().get("/accounts/entra/callback/", {"code": "x", "state": "y"}).status_code == 405


def test_entra_not_answering_in_time_refuses_the_sign_in(entra, use_tenant):
    tenant = use_tenant(entra)
    client = PortalClient()
    fields = entra_answer(client, "Grace Global")
    tenant.inject("/oauth2/v2.0/token", "timeout", method="POST")
    response = client.post("/accounts/entra/callback/", fields)
    assert response.status_code == 400 and "did not answer in time" in response.content.decode()


def test_msal_waits_for_entra_no_longer_than_the_timeout(entra, use_tenant, settings):
    settings.AUTOPATCH_ENTRA_TIMEOUT = 7
    use_tenant(entra)
    session = signin_config().session
    waits = []
    send = session.get_adapter("https://login.microsoftonline.com/").send

    def timed_send(request, **kwargs):
        if "/authorize?" not in request.url:  # the browser's visit, made by the test itself
            waits.append((urlsplit(request.url).path, kwargs.get("timeout")))
        return send(request, **kwargs)

    session.get_adapter("https://login.microsoftonline.com/").send = timed_send
    entra_sign_in(PortalClient(), "Grace Global")
    assert any(path.endswith("/oauth2/v2.0/token") for path, _ in waits)
    assert all(wait == 7 for _, wait in waits), waits


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
    answer = client.post(
        page.request["PATH_INFO"] + "?" + page.request["QUERY_STRING"],
        {"login_hint": upn("Rita Reader"), "csrfmiddlewaretoken": client.csrf_token()},
    )
    html = answer.content.decode()
    assert answer.status_code == 200 and "accounts/form_post.js" in html
    action, fields = read_form_post(html)
    assert action == "http://testserver/accounts/entra/callback/" and set(fields) >= {"code", "state"}
    assert client.post(action, fields).status_code == 302
    assert client.get("/devices/ready/").status_code == 200


def test_entra_pages_do_not_exist_with_local_accounts():
    assert PortalClient().get("/accounts/entra/start/").status_code == 404
