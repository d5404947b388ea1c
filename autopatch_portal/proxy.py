"""Behind the TLS proxy, the client's address is the one the proxy saw, not the proxy's own."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse


def forwarded_client(x_forwarded_for: str) -> str | None:
    """The address the nearest proxy added last to X-Forwarded-For; earlier entries come from the client and
    can be forged."""
    last = x_forwarded_for.split(",")[-1].strip()
    try:
        return str(ipaddress.ip_address(last))
    except ValueError:
        return None


class ProxiedClientMiddleware:
    """With BEHIND_TLS_PROXY, REMOTE_ADDR becomes the client's address from X-Forwarded-For, so the audit log
    and the per-address sign-in lockout see clients, not the proxy. Only safe when the portal can be
    reached through the proxy alone, as in docker-compose.yml."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if settings.BEHIND_TLS_PROXY:
            client = forwarded_client(request.META.get("HTTP_X_FORWARDED_FOR", ""))
            if client is not None:
                request.META["REMOTE_ADDR"] = client
        return self.get_response(request)
