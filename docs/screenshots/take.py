"""Take the README's screenshots of a running portal: BASE_URL, PORTAL_USER and PORTAL_PASSWORD from the environment."""

import os
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

BASE = os.environ.get("BASE_URL", "http://127.0.0.1:8010")
OUT = Path(__file__).resolve().parent
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--disable-quic", "--no-first-run"]  # fmt: skip


def session_key() -> str:
    """A signed-in session for PORTAL_USER, made in the portal's database (same AUTOPATCH_VAR_DIR / DATABASE_URL)."""
    import django

    sys.path.insert(0, str(OUT.parent.parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "autopatch_portal.settings")
    django.setup()
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
    from django.contrib.sessions.backends.db import SessionStore

    user = get_user_model().objects.get(username=os.environ.get("PORTAL_USER", "demo-admin"))
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    return session.session_key


def main() -> None:
    key = session_key()  # before Playwright starts its event loop
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        page.context.add_cookies([{"name": "sessionid", "value": key, "url": BASE}])
        for tab in ("ready", "not-ready", "not-registered"):
            page.goto(f"{BASE}/devices/{tab}/")
            page.screenshot(path=OUT / f"tab-{tab}.png")
        page.goto(f"{BASE}/devices/not-registered/")
        page.click("#blade-main tbody tr[data-device] .device-link")
        page.wait_for_selector("#flyin:not([hidden]) #flyin-title")
        page.screenshot(path=OUT / "flyin.png")
        page.keyboard.press("Escape")
        page.click("[data-command=columns]")
        page.wait_for_selector("#dialog[open] .column-chooser")
        page.screenshot(path=OUT / "columns.png")
        page.keyboard.press("Escape")
        narrow = browser.new_page(viewport={"width": 768, "height": 900}, storage_state=page.context.storage_state())
        narrow.goto(f"{BASE}/devices/ready/")
        narrow.screenshot(path=OUT / "ready-768.png")
        if len(sys.argv) > 1 and sys.argv[1] == "--empty":
            page.goto(f"{BASE}/devices/ready/")
            page.screenshot(path=OUT / "empty-state.png")
        browser.close()


if __name__ == "__main__":
    main()
