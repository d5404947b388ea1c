"""The Microsoft Graph client: app-only tokens from MSAL, paging, throttling, retries, clear errors."""

from __future__ import annotations

import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import msal
import orjson
import requests
from requests.structures import CaseInsensitiveDict

log = logging.getLogger(__name__)

GRAPH = "https://graph.microsoft.com"
GRAPH_SCOPE = ["https://graph.microsoft.com/.default"]
# concepts/json-batching.md: "JSON batch requests are currently limited to 20 individual requests."
BATCH_LIMIT = 20
# Answers that carry a Retry-After worth waiting for: throttling, and a service that asks to come back later.
WAIT_AND_RETRY = (429, 503)


class GraphError(Exception):
    """Graph could not answer a request; the message says what and why, for the run's record."""

    def __init__(
        self, message: str, *, status: int | None = None, code: str = "", request_id: str = "", url: str = ""
    ):
        super().__init__(message)
        self.status = status
        self.code = code
        self.request_id = request_id
        self.url = url


class TokenError(GraphError):
    """Entra ID refused the app's credentials."""


def parse_error(response: requests.Response) -> GraphError:
    """Turn Graph's error JSON ({"error": {"code", "message", "innerError"}}) into a GraphError."""
    try:
        payload = response.json()
    except ValueError:
        payload = None
    return error_from(response.status_code, payload, response.url, response.reason, response.text[:200])


def error_from(status: int, payload: Any, url: str, reason: str = "", text: str = "") -> GraphError:
    """A GraphError from an error answer's status and JSON (a whole response's or one batch item's)."""
    code, message, request_id = "", text or reason, ""
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        code = str(error.get("code") or "")
        message = intune_message(str(error.get("message") or message))
        inner = error.get("innerError") or error.get("innererror") or {}
        if isinstance(inner, dict):
            request_id = str(inner.get("request-id") or inner.get("requestId") or "")
    detail = f" (request-id {request_id})" if request_id else ""
    return GraphError(
        f"Graph answered {status} {code or reason} for {_short(url)}: {message}{detail}",
        status=status,
        code=code,
        request_id=request_id,
        url=url,
    )


# Intune appends support details to its messages: " - Operation ID (for customer support): ... - Activity ID: ...
# - Url: ..." (the Url is Intune's internal service address, of no use to an admin).
_INTUNE_DETAIL = re.compile(r"\s+-\s+(?=(?:Operation ID|Activity ID|Url|CustomApiErrorPhrase)\b)")
_NO_ID = re.compile(r"[0-]*")  # Intune often sends an all-zero operation ID: nothing worth quoting


def intune_message(message: str) -> str:
    """Intune's errors carry a JSON text in `error.message` ({"_version": 3, "Message": "...", "CustomApiErrorPhrase":
    "", ...}, or the same details inline): its readable Message with the operation and activity IDs support asks for.
    Any other message is returned as it is."""
    text, phrase = message, ""
    if message.lstrip().startswith("{"):
        try:
            inner = json.loads(message)
        except ValueError:
            return message
        if not isinstance(inner, dict) or not isinstance(inner.get("Message"), str):
            return message
        text, phrase = inner["Message"], str(inner.get("CustomApiErrorPhrase") or "")
    readable, *details = _INTUNE_DETAIL.split(text)
    ids = []
    for detail in details:
        label, _, value = detail.partition(":")
        value = value.strip()
        if label.startswith("CustomApiErrorPhrase"):
            phrase = phrase or value
        elif label.startswith(("Operation ID", "Activity ID")) and value and not _NO_ID.fullmatch(value):
            ids.append(f"{'operation' if label.startswith('Operation') else 'activity'} ID {value}")
    readable = readable.strip() or text.strip()
    if phrase:
        readable = f"{readable} [{phrase}]"
    return f"{readable} ({', '.join(ids)})" if ids else readable


def _short(url: str) -> str:
    return url.split("?", 1)[0]


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """Graph's Retry-After is seconds and may be a decimal such as 2.128."""
    value = CaseInsensitiveDict(headers).get("Retry-After")
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


@dataclass
class BatchAnswer:
    """One request's answer inside a JSON batch: its status, body and headers, and its error if it failed."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    error: GraphError | None = None
    attempts: int = 1  # how many times it was sent (more than once: it was throttled and retried)


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
        self._count = threading.Lock()  # reads that run at once share the client

    def get(
        self, url: str, params: dict[str, Any] | None = None, headers: dict[str, str] | None = None
    ) -> dict:
        """One GET, retried on throttling, 5xx, time-outs and malformed JSON, at most max_retries times."""
        return self.request("GET", url, params=params, headers=headers)

    def post(self, url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> dict:
        """One POST with a JSON body (for example members/$ref); 204 answers an empty dict."""
        return self.request("POST", url, json_body=body, headers=headers)

    def request(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, Any] | None = None,
        json_body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> dict:
        if not url.startswith("https://"):
            url = f"{GRAPH}/{url.lstrip('/')}"
        attempt = 0
        while True:
            attempt += 1
            wait: float | None = None
            try:
                with self._count:
                    self.requests_made += 1
                response = self.session.request(
                    method,
                    url,
                    params=params,
                    json=json_body,
                    timeout=self.timeout,
                    headers={
                        "Authorization": f"Bearer {self.token()}",
                        "Accept": "application/json",
                        **(headers or {}),
                    },
                )
            except (requests.Timeout, requests.ConnectionError) as exc:
                failure: GraphError = GraphError(
                    f"Graph did not answer {_short(url)} in time: {exc}", url=url
                )
            else:
                if response.status_code == 204:
                    return {}
                if 200 <= response.status_code < 300:
                    try:
                        return orjson.loads(response.content)
                    except ValueError:
                        failure = GraphError(
                            f"Graph sent a malformed page for {_short(url)}: not JSON", url=url
                        )
                else:
                    failure = parse_error(response)
                    if response.status_code in WAIT_AND_RETRY:
                        wait = retry_after_seconds(response.headers)
                    elif response.status_code < 500 and response.status_code != 408:
                        raise failure
            if attempt > self.max_retries:
                raise GraphError(
                    f"{failure} (gave up after {attempt} attempts)",
                    status=failure.status,
                    code=failure.code,
                    request_id=failure.request_id,
                    url=url,
                )
            if wait is None:
                wait = self._backoff(attempt)
            log.info("Graph request to %s failed (%s); retrying in %.2f s", _short(url), failure.status, wait)
            self.sleep(wait)

    def _backoff(self, attempt: int) -> float:
        return min(self.max_backoff, self.backoff * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)

    def batch(self, requests_: Sequence[str | dict[str, Any]], workers: int = 1) -> list[BatchAnswer]:
        """Send requests through JSON batching (concepts/json-batching.md): `POST /v1.0/$batch` or `/beta/$batch`
        after the requests' own version, at most 20 a batch, up to `workers` batches at once. A request is a GET URL
        ("/beta/...") or a dict with method, url and optionally body and headers. Answers come back in the
        requests' order (Graph answers in any order, correlated by id). Items throttled (429) or asked to come back
        (503) are sent again, and only they, after the longest of their Retry-Afters (concepts/throttling.md,
        "Throttling and batching"); any other item error is returned on its answer, not raised."""
        prepared = [_batch_request(request) for request in requests_]
        answers: list[BatchAnswer] = [BatchAnswer(0) for _ in prepared]
        attempts = [0] * len(prepared)
        pending = list(range(len(prepared)))
        while pending:
            chunks = [
                (version, same[start : start + BATCH_LIMIT])
                for version in dict.fromkeys(prepared[i][0] for i in pending)
                for same in [[i for i in pending if prepared[i][0] == version]]
                for start in range(0, len(same), BATCH_LIMIT)
            ]

            def send(chunk: tuple[str, list[int]]) -> dict[str, BatchAnswer]:
                return self._send_batch(chunk[0], {str(i): prepared[i][1] for i in chunk[1]})

            if workers > 1 and len(chunks) > 1:
                with ThreadPoolExecutor(min(workers, len(chunks))) as pool:
                    results = list(pool.map(send, chunks))
            else:
                results = [send(chunk) for chunk in chunks]
            again: list[int] = []
            wait = 0.0
            for (version, chunk), answered in zip(chunks, results, strict=True):
                for i in chunk:
                    attempts[i] += 1
                    url = f"{GRAPH}/{version}{prepared[i][1]['url']}"
                    answer = answers[i] = answered.get(str(i)) or BatchAnswer(0)
                    answer.attempts = attempts[i]
                    if answer.status in WAIT_AND_RETRY and attempts[i] <= self.max_retries:
                        again.append(i)
                        after = retry_after_seconds(answer.headers)
                        wait = max(wait, after if after is not None else self._backoff(attempts[i]))
                    elif answer.status == 0:
                        answer.error = GraphError(
                            f"Graph's batch answer has no response for {_short(url)}", url=url
                        )
                    elif not 200 <= answer.status < 300:
                        text = answer.body[:200] if isinstance(answer.body, str) else ""
                        error = error_from(answer.status, answer.body, url, text=text)
                        if answer.status in WAIT_AND_RETRY:
                            error = GraphError(
                                f"{error} (gave up after {attempts[i]} attempts)",
                                status=error.status,
                                code=error.code,
                                request_id=error.request_id,
                                url=url,
                            )
                        answer.error = error
            if again:
                log.info("%d batched Graph requests throttled; retrying in %.2f s", len(again), wait)
                self.sleep(wait)
            pending = again
        return answers

    def _send_batch(self, version: str, requests_: dict[str, dict[str, Any]]) -> dict[str, BatchAnswer]:
        """One `$batch` POST; its answers by request id. A batch Graph refuses as a whole raises."""
        url = f"{GRAPH}/{version}/$batch"
        payload = self.post(url, {"requests": [{"id": key, **request} for key, request in requests_.items()]})
        responses = payload.get("responses") if isinstance(payload, dict) else None
        if not isinstance(responses, list):
            raise GraphError(
                f"Graph sent a malformed batch answer for {_short(url)}: no 'responses' list", url=url
            )
        answers: dict[str, BatchAnswer] = {}
        for item in responses:
            if not isinstance(item, dict) or not isinstance(item.get("status"), int) or "id" not in item:
                raise GraphError(
                    f"Graph sent a malformed batch answer for {_short(url)}: an item without id or status",
                    url=url,
                )
            headers = item.get("headers")
            answers[str(item["id"])] = BatchAnswer(
                item["status"], item.get("body"), headers if isinstance(headers, dict) else {}
            )
        return answers

    def pages(
        self,
        url: str,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        first: Any = None,
    ) -> Iterator[list[dict]]:
        """Each page's items in turn; the next page is the whole @odata.nextLink URL, not rebuilt. `first` is a
        first page already read (a `$batch` answer's body), taken instead of reading `url`."""
        next_url: str | None = url
        while next_url:
            payload = first if first is not None else self.get(next_url, params=params, headers=headers)
            first = None
            params = None  # the nextLink carries the query
            items = payload.get("value") if isinstance(payload, dict) else None
            if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
                raise GraphError(
                    f"Graph sent a malformed page for {_short(next_url)}: no list of objects in 'value'",
                    url=next_url,
                )
            yield items
            next_url = payload.get("@odata.nextLink")
            if next_url is not None and not isinstance(next_url, str):
                raise GraphError(f"Graph sent a malformed @odata.nextLink for {_short(url)}", url=url)


def _batch_request(request: str | dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A batch item's Graph version and its request, whose url is relative to that version."""
    item = {"method": "GET", "url": request} if isinstance(request, str) else dict(request)
    path = str(item["url"]).removeprefix(GRAPH).lstrip("/")
    version, _, rest = path.partition("/")
    if version not in ("v1.0", "beta") or not rest:
        raise ValueError(f"A batched request's URL starts with /v1.0/ or /beta/, not {item['url']!r}")
    item["url"] = f"/{rest}"
    return version, item


def dumps(item: dict) -> str:
    """Compact JSON text of a Graph object, for staging."""
    return orjson.dumps(item).decode()
