"""A browser-like test client: CSRF checks on, signs in through the real login form, sends the token as htmx does."""

from __future__ import annotations

import re

from django.test import Client
from django.utils.crypto import get_random_string

from .conftest import PASSWORD

TOKEN_FIELD = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


class PortalClient(Client):
    def __init__(self, **kwargs):
        super().__init__(enforce_csrf_checks=True, **kwargs)

    def csrf_token(self) -> str:
        if "csrftoken" not in self.cookies:
            self.get("/accounts/login/")
        if (
            "csrftoken" not in self.cookies
        ):  # no page has offered a form yet: a browser would hold a fresh secret
            self.cookies["csrftoken"] = get_random_string(32)
        return self.cookies["csrftoken"].value

    def sign_in(self, username: str, password: str = PASSWORD, **extra):
        page = self.get("/accounts/login/")
        token = TOKEN_FIELD.search(page.content.decode()).group(1)
        return self.post(
            "/accounts/login/",
            {"username": username, "password": password, "csrfmiddlewaretoken": token},
            **extra,
        )

    def htmx_post(self, path: str, data: dict | None = None, **extra):
        """A POST as the blade's htmx sends it: the token in the X-CSRFToken header, HX-Request set."""
        return self.post(
            path, data or {}, headers={"X-CSRFToken": self.csrf_token(), "HX-Request": "true"}, **extra
        )

    def form_post(self, path: str, data: dict | None = None, **extra):
        return self.post(path, {**(data or {}), "csrfmiddlewaretoken": self.csrf_token()}, **extra)


def signed_in(user) -> PortalClient:
    client = PortalClient()
    response = client.sign_in(user.username)
    assert response.status_code == 302, response.content[:500]
    return client
