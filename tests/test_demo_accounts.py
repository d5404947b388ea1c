"""`make run`'s demo accounts: the password shown once, and how to set a new one afterwards."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from .portal_client import PortalClient

pytestmark = pytest.mark.django_db


def run(monkeypatch, password: str | None = None) -> str:
    if password is None:
        monkeypatch.delenv("AUTOPATCH_DEMO_PASSWORD", raising=False)
    else:
        monkeypatch.setenv("AUTOPATCH_DEMO_PASSWORD", password)
    out = io.StringIO()
    call_command("create_demo_accounts", stdout=out)
    return out.getvalue()


def test_a_second_run_cannot_show_the_password_and_says_how_to_set_one(monkeypatch):
    assert "shown once" in run(monkeypatch)
    again = run(monkeypatch)
    assert "shown once" not in again and "AUTOPATCH_DEMO_PASSWORD=" in again


def test_the_variable_sets_a_new_password_for_both_accounts(monkeypatch):
    run(monkeypatch)
    run(monkeypatch, "a brand new demo password")
    for name in ("demo-admin", "demo-reader"):
        assert PortalClient().sign_in(name, "a brand new demo password").status_code == 302
