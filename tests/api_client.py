"""Calling the REST API in tests: keys per scope, JSON bodies, the Authorization header as clients send it."""

from __future__ import annotations

import json

from django.test import Client

from accounts.api_keys import create_key


def api_key(scope: str, name: str | None = None) -> str:
    return create_key(name or f"test-{scope}", scope, "tests")[1]


class ApiClient(Client):
    """A client that sends `Authorization: Bearer <credential>` (when given) and JSON bodies."""

    def __init__(self, credential: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.credential = credential

    def headers_for(self, extra: dict | None = None) -> dict:
        headers = dict(extra or {})
        if self.credential:
            headers.setdefault("Authorization", f"Bearer {self.credential}")
        return headers

    def api_get(self, path: str, params: dict | None = None, headers: dict | None = None):
        return self.get(path, params or {}, headers=self.headers_for(headers))

    def api_post(
        self, path: str, body=None, headers: dict | None = None, content_type: str = "application/json"
    ):
        data = body if isinstance(body, str | bytes) else json.dumps(body if body is not None else {})
        return self.post(path, data, content_type=content_type, headers=self.headers_for(headers))
