"""Take the README's screenshots of a running portal, signing in through its login page.

BASE_URL=http://127.0.0.1:8000 PORTAL_USER=demo-admin PORTAL_PASSWORD=... python docs/screenshots/take.py
... python docs/screenshots/take.py --empty     # a portal whose tenant has no devices: the empty state only
"""

import os
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

BASE = os.environ.get("BASE_URL", "http://127.0.0.1:8000")
OUT = Path(__file__).resolve().parent
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]


def sign_in(page) -> None:
    page.goto(f"{BASE}/accounts/login/")
    page.fill("input[name=username]", os.environ.get("PORTAL_USER", "demo-admin"))
    page.fill("input[name=password]", os.environ["PORTAL_PASSWORD"])
    page.click("button[type=submit]")
    page.wait_for_url(f"{BASE}/devices/**")


def main() -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        if "--empty" in sys.argv:
            sign_in(page)
            page.goto(f"{BASE}/devices/ready/")
            page.screenshot(path=OUT / "empty-state.png")
            browser.close()
            return
        page.goto(f"{BASE}/accounts/login/")
        page.screenshot(path=OUT / "sign-in.png")
        sign_in(page)
        for tab in ("ready", "not-ready", "not-registered"):
            page.goto(f"{BASE}/devices/{tab}/")
            page.screenshot(path=OUT / f"tab-{tab}.png")
        page.goto(f"{BASE}/devices/readiness-script/")
        page.screenshot(path=OUT / "readiness-script.png")
        page.goto(f"{BASE}/devices/not-registered/")
        page.click("#blade-main tbody tr[data-device] .device-link")
        page.wait_for_selector("#flyin:not([hidden]) #flyin-title")
        page.screenshot(path=OUT / "flyin.png")
        page.keyboard.press("Escape")
        page.click("[data-command=columns]")
        page.wait_for_selector("#dialog[open] .column-chooser")
        page.screenshot(path=OUT / "columns.png")
        page.keyboard.press("Escape")
        page.goto(f"{BASE}/devices/ready/?q=LT&sort=ring&per_page=25")
        page.check("[data-select-all]")
        page.click("[data-select-matching-toggle]")
        page.click("[data-command=actions]")
        page.screenshot(path=OUT / "select-matching.png")
        page.goto(f"{BASE}/accounts/audit/")
        page.screenshot(path=OUT / "audit-log.png")
        narrow = browser.new_page(
            viewport={"width": 768, "height": 900}, storage_state=page.context.storage_state()
        )
        narrow.goto(f"{BASE}/devices/ready/")
        narrow.screenshot(path=OUT / "ready-768.png")
        browser.close()


if __name__ == "__main__":
    main()
