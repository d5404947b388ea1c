"""The Microsoft Graph client: app-only tokens from MSAL, paging, throttling, retries, clear errors."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from typing import Any

import msal
import orjson
import requests

log = logging.getLogger(__name__)

GRAPH = "https://graph.microsoft.com"
GRAPH_SCOPE = ["https://graph.microsoft.com/.default"]


class GraphError(Exception):
    """Graph could not answer a request; the message says what and why, for the run's record."""

    def __init__(self, message: str, *, status: int | None = None, code: str = "", request_id: str = "", url: str = ""):
        super().__init__(message)
        self.status = status
        self.code = code
        self.request_id = request_id
        self.url = url


class TokenError(GraphError):
    """Entra ID refused the app's credentials."""


def parse_error(response: requests.Response) -> GraphError:
    """Turn Graph's error JSON ({"error": {"code", "message", "innerError"}}) into a GraphError."""
    code, message, request_id = "", response.text[:200] or response.reason, ""
    try:
        error = response.json().get("error", {})
        if isinstance(error, dict):
            code = error.get("code", "")
            message = error.get("message", message)
            inner = error.get("innerError") or error.get("innererror") or {}
            request_id = inner.get("request-id") or inner.get("requestId") or ""
    except ValueError:
        pass
    detail = f" (request-id {request_id})" if request_id else ""
    return GraphError(
        f"Graph answered {response.status_code} {code or response.reason} for {_short(response.url)}: "
        f"{message}{detail}",
        status=response.status_code, code=code, request_id=request_id, url=response.url,
    )  # fmt: skip


def _short(url: str) -> str:
    return url.split("?", 1)[0]


def retry_after_seconds(response: requests.Response) -> float | None:
    """Graph's Retry-After is seconds and may be a decimal such as 2.128."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def client_token_provider(app: msal.ConfidentialClientApplication) -> Callable[[], str]:
    def token() -> str:
        result = app.acquire_token_for_client(scopes=GRAPH_SCOPE)
        if "access_token" not in result:
            raise TokenError(
                f"Entra ID refused the app's token request: {result.get('error')}: "
                f"{(result.get('error_description') or '').splitlines()[0] if result.get('error_description') else ''}",
                code=str(result.get("error", "")),
            )
        return result["access_token"]

    return token


class GraphClient:
    """GET requests to Graph with the app's token; follows @odata.nextLink; waits out 429 and 5xx."""

    def __init__(
        self,
        session: requests.Session,
        token: Callable[[], str],
        *,
        timeout: float = 30,
        max_retries: int = 5,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.session = session
        self.token = token
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.sleep = sleep
        self.requests_made = 0

    def get(self, url: str, params: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> dict:
        """One GET, retried on throttling, 5xx, time-outs and malformed JSON, at most max_retries times."""
        return self.request("GET", url, params=params, headers=headers)

    def post(self, url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> dict:
        """One POST with a JSON body (for example members/$ref); 204 answers an empty dict."""
        return self.request("POST", url, json_body=body, headers=headers)

    def request(self, method: str, url: str, *, params: dict[str, Any] | None = None,
                json_body: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> dict:  # fmt: skip
        if not url.startswith("https://"):
            url = f"{GRAPH}/{url.lstrip('/')}"
        attempt = 0
        while True:
            attempt += 1
            wait: float | None = None
            try:
                self.requests_made += 1
                response = self.session.request(
                    method, url, params=params, json=json_body, timeout=self.timeout,
                    headers={"Authorization": f"Bearer {self.token()}", "Accept": "application/json", **(headers or {})},
                )  # fmt: skip
            except (requests.Timeout, requests.ConnectionError) as exc:
                failure: GraphError = GraphError(f"Graph did not answer {_short(url)} in time: {exc}", url=url)
            else:
                if response.status_code == 204:
                    return {}
                if 200 <= response.status_code < 300:
                    try:
                        return orjson.loads(response.content)
                    except ValueError:
                        failure = GraphError(f"Graph sent a malformed page for {_short(url)}: not JSON", url=url)
                else:
                    failure = parse_error(response)
                    if response.status_code == 429:
                        wait = retry_after_seconds(response)
                    elif response.status_code < 500 and response.status_code != 408:
                        raise failure
            if attempt > self.max_retries:
                raise GraphError(f"{failure} (gave up after {attempt} attempts)", status=failure.status,
                                 code=failure.code, request_id=failure.request_id, url=url)  # fmt: skip
            if wait is None:
                wait = min(self.max_backoff, self.backoff * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)
            log.info("Graph request to %s failed (%s); retrying in %.2f s", _short(url), failure.status, wait)
            self.sleep(wait)

    def pages(self, url: str, params: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> Iterator[list[dict]]:
        """Each page's items in turn; the next page is the whole @odata.nextLink URL, not rebuilt."""
        next_url: str | None = url
        while next_url:
            payload = self.get(next_url, params=params, headers=headers)
            params = None  # the nextLink carries the query
            items = payload.get("value") if isinstance(payload, dict) else None
            if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
                raise GraphError(f"Graph sent a malformed page for {_short(next_url)}: no list of objects in 'value'",
                                 url=next_url)  # fmt: skip
            yield items
            next_url = payload.get("@odata.nextLink")
            if next_url is not None and not isinstance(next_url, str):
                raise GraphError(f"Graph sent a malformed @odata.nextLink for {_short(url)}", url=url)


def dumps(item: dict) -> str:
    """Compact JSON text of a Graph object, for staging."""
    return orjson.dumps(item).decode()
