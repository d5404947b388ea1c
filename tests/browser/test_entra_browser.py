"""Entra ID sign-in in a real browser: Entra's answer arrives as a cross-site form POST, which leaves the portal's
SameSite=Lax cookies behind, and the sign-in completes all the same."""

from __future__ import annotations

import re
from html import escape

import pytest
from playwright.sync_api import expect

from accounts.views.entra_signin import read_form_post
from tests.entra_tenant import build_entra_tenant, upn

pytestmark = pytest.mark.browser
ENTRA = "https://entra.test"  # another site: Playwright serves Entra's answer page there


def test_a_cross_site_form_post_from_entra_signs_the_user_in(
    chromium, live_server, transactional_db, builder, use_tenant, settings
):
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = (
        True  # as in production (localhost is secure)
    )
    use_tenant(build_entra_tenant(builder, settings))
    context = chromium.new_context()
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(f"{live_server.url}/accounts/entra/start/")
    # Pick the user on the simulated Microsoft page, but keep its answer form from posting within the portal's
    # own site: the answer is posted again below from Entra's site, as a real tenant's is.
    token = page.locator("input[name=csrfmiddlewaretoken]").input_value()
    picked = page.request.post(
        page.url, form={"login_hint": upn("Grace Global"), "csrfmiddlewaretoken": token}
    )
    action, answer = read_form_post(picked.text())
    assert action == f"{live_server.url}/accounts/entra/callback/" and {"code", "state"} <= set(answer)
    fields = "".join(
        f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">' for k, v in answer.items()
    )
    html = (
        f'<form method="POST" action="{live_server.url}/accounts/entra/callback/">{fields}</form>'
        "<script>document.forms[0].submit();</script>"
    )
    page.route(f"{ENTRA}/**", lambda route: route.fulfill(status=200, content_type="text/html", body=html))
    with page.expect_request("**/accounts/entra/callback/") as posted:
        page.goto(f"{ENTRA}/answer")
    expect(page).to_have_url(re.compile(r"/devices/ready/$"))
    cookies = posted.value.header_value("cookie") or ""
    assert "entra_signin=" in cookies and "csrftoken=" not in cookies, (
        cookies
    )  # SameSite=None came, Lax stayed
    expect(page.locator("body")).to_contain_text("Service Administrator")
    context.close()


def test_the_simulated_sign_in_page_posts_its_answer_by_itself(
    chromium, live_server, transactional_db, builder, use_tenant, settings
):
    use_tenant(build_entra_tenant(builder, settings))
    context = chromium.new_context()
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_role("link", name="Sign in with Microsoft").click()
    page.select_option("#id_login_hint", upn("Grace Global"))
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/devices/ready/$"))
    expect(page.locator("body")).to_contain_text("Service Administrator")
    context.close()
