"""Local accounts: the login form, failed-login throttling, the no-access page, sign-out; all recorded."""

from __future__ import annotations

import pytest

from accounts.models import AuditEvent

from .conftest import PASSWORD
from .portal_client import PortalClient, signed_in

pytestmark = pytest.mark.django_db


def test_it_shows_the_login_form_with_username_and_password():
    page = PortalClient().get("/accounts/login/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="username"' in html and 'name="password"' in html and "Sign in with Microsoft" not in html


def test_an_administrator_signs_in_and_lands_on_the_devices(alice):
    response = PortalClient().sign_in("alice")
    assert response.status_code == 302 and response["Location"] == "/devices/ready/"
    event = AuditEvent.objects.get(action=AuditEvent.Action.SIGN_IN)
    assert (event.actor, event.result, event.source_ip) == ("alice", "Service Administrator", "127.0.0.1")


def test_it_keeps_the_next_page(bob):
    client = PortalClient()
    page = client.get("/accounts/login/?next=/devices/not-ready/")
    token = page.context["csrf_token"]
    response = client.post(
        "/accounts/login/",
        {
            "username": "bob",
            "password": PASSWORD,
            "next": "/devices/not-ready/",
            "csrfmiddlewaretoken": str(token),
        },
    )
    assert response["Location"] == "/devices/not-ready/"


def test_it_does_not_follow_next_to_another_site(bob):
    client = PortalClient()
    client.get("/accounts/login/")
    response = client.form_post(
        "/accounts/login/", {"username": "bob", "password": PASSWORD, "next": "https://evil.example/"}
    )
    assert response["Location"] == "/devices/ready/"


def test_a_wrong_password_is_refused_and_recorded(alice):
    response = PortalClient().sign_in("alice", "not the password")
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()
    event = AuditEvent.objects.get(action=AuditEvent.Action.SIGN_IN_FAILED)
    assert (event.actor, event.result) == ("alice", "wrong name or password")
    assert "not the password" not in str(event.details) + event.result + event.target


def test_it_locks_an_account_after_five_failures_even_for_the_right_password(alice):
    client = PortalClient()
    for _ in range(5):
        assert client.sign_in("alice", "wrong password").status_code == 200
    response = client.sign_in("alice")
    assert response.status_code == 429
    assert "Too many failed sign-ins. Try again in 15 minutes." in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert (
        AuditEvent.objects.filter(action=AuditEvent.Action.SIGN_IN_FAILED, result="locked out").count() == 1
    )


@pytest.mark.parametrize("look_alike", ["ａｌｉｃｅ", " alice ", "ALICE", "ａｌice"])
def test_look_alikes_of_a_locked_account_are_locked_too(alice, look_alike):
    client = PortalClient()
    for _ in range(5):
        client.sign_in("alice", "wrong password")
    response = client.sign_in(look_alike)
    assert response.status_code == 429 and "_auth_user_id" not in client.session


def test_look_alikes_share_one_count(alice):
    client = PortalClient()
    for typed in ("ａｌｉｃｅ", "ａlice", "alｉce", "alicｅ", "ａｌｉｃe"):
        client.sign_in(typed, "wrong password")
    assert client.sign_in("alice").status_code == 429
    failed = AuditEvent.objects.filter(action=AuditEvent.Action.SIGN_IN_FAILED).values_list(
        "actor", flat=True
    )
    assert set(failed) == {"alice"}


@pytest.mark.parametrize(
    "typed, password", [("al\x00ice", "wrong password"), ("\x00", "x"), ("alice", "pass\x00")]
)
def test_a_nul_character_in_the_form_is_refused_and_recorded(alice, typed, password):
    # PostgreSQL refuses NUL in text: the count and the audit log take the name without it.
    client = PortalClient()
    response = client.sign_in(typed, password)
    assert response.status_code == 200 and "_auth_user_id" not in client.session
    assert "Null characters are not allowed" in response.content.decode()
    event = AuditEvent.objects.get(action=AuditEvent.Action.SIGN_IN_FAILED)
    assert event.actor == (typed.replace("\x00", "") or "anonymous")


def test_nul_characters_do_not_dodge_an_accounts_count(alice):
    client = PortalClient()
    for typed in ("\x00alice", "al\x00ice", "alice\x00", "a\x00l\x00ice", "alic\x00e"):
        client.sign_in(typed, "wrong password")
    assert client.sign_in("alice").status_code == 429


def test_other_accounts_are_not_locked_by_one_accounts_failures(alice, bob):
    client = PortalClient()
    for _ in range(5):
        client.sign_in("alice", "wrong password")
    assert client.sign_in("bob").status_code == 302


def test_it_locks_an_address_that_tries_many_accounts(settings, bob):
    settings.AUTOPATCH_LOGIN_MAX_FAILURES_PER_IP = 3
    client = PortalClient()
    for name in ("x1", "x2", "x3"):
        client.sign_in(name, "guess")
    assert client.sign_in("bob").status_code == 429


def test_a_successful_sign_in_ends_the_count(alice):
    client = PortalClient()
    for _ in range(4):
        client.sign_in("alice", "wrong password")
    assert client.sign_in("alice").status_code == 302
    other = PortalClient()
    for _ in range(4):
        other.sign_in("alice", "wrong password")
    assert other.sign_in("alice").status_code == 302


def test_someone_without_a_role_gets_the_no_access_page_and_no_device(charlie):
    client = PortalClient()
    response = client.sign_in("charlie")
    assert response["Location"] == "/accounts/no-access/"
    page = client.get("/accounts/no-access/")
    assert page.status_code == 403
    assert "You have no access to this portal" in page.content.decode()
    blade = client.get("/devices/ready/")
    assert blade.status_code == 403 and "You have no access to this portal" in blade.content.decode()
    assert AuditEvent.objects.get(action=AuditEvent.Action.SIGN_IN).result == "no role"


def test_the_no_access_page_sends_anonymous_users_to_sign_in():
    response = PortalClient().get("/accounts/no-access/")
    assert response.status_code == 302 and response["Location"] == "/accounts/login/"


def test_sign_out_needs_a_post_with_the_token_and_is_recorded(alice):
    client = signed_in(alice)
    assert client.get("/accounts/logout/").status_code == 405
    assert client.post("/accounts/logout/").status_code == 403  # no CSRF token
    response = client.form_post("/accounts/logout/")
    assert response.status_code == 302 and response["Location"] == "/accounts/login/"
    assert AuditEvent.objects.filter(action=AuditEvent.Action.SIGN_OUT, actor="alice").count() == 1
    assert client.get("/devices/ready/").status_code == 302


def test_the_header_shows_who_is_signed_in_and_their_role(bob):
    page = signed_in(bob).get("/devices/ready/")
    assert "bob" in page.content.decode() and "Service Reader" in page.content.decode()


def test_a_login_post_without_the_token_is_refused(alice):
    response = PortalClient().post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 403
    assert "security token" in response.content.decode()
