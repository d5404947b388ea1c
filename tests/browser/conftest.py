"""Playwright with Debian's Chromium against pytest-django's live server, signed in through the login page."""

from __future__ import annotations

import os

import pytest

from tests.blade_tenant import build_blade_tenant
from tests.conftest import PASSWORD

# Playwright's sync API runs an event loop in this thread; the test's own database calls stay synchronous.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def live_tenant(transactional_db, builder, use_tenant):
    return build_blade_tenant(builder, use_tenant)


@pytest.fixture
def sign_in(chromium, live_server):
    contexts = []

    def sign_in_as(user, width: int = 1280):
        context = chromium.new_context(viewport={"width": width, "height": 900}, accept_downloads=True)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.goto(f"{live_server.url}/accounts/login/?next=/devices/ready/")
        page.fill("input[name=username]", user.username)
        page.fill("input[name=password]", PASSWORD)
        page.click("form button[type=submit]")
        page.wait_for_url("**/devices/ready/")
        return page

    yield sign_in_as
    for context in contexts:
        context.close()
