"""MSAL's HTTP client: the tenant's requests session, with a timeout on every call to Entra ID."""

from __future__ import annotations

from typing import Any

import requests


class TimedHttpClient:
    """What MSAL takes as `http_client` (get, post, close). MSAL refuses its own `timeout` once it is given a
    session, and a requests session has no timeout of its own, so without this a silent Entra ID would hold a
    web worker for good."""

    def __init__(self, session: requests.Session, timeout: float):
        self.session = session
        self.timeout = timeout

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        return self.session.get(url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        return self.session.post(url, **kwargs)

    def close(self) -> None:
        self.session.close()
