"""API authentication: `Authorization: Bearer <API key or Entra access token>`, or the portal's own session."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, SessionAuthentication, get_authorization_header

from ..models import ApiKey
from . import tokens
from .principals import SCOPE_CAPABILITIES, ApiPrincipal

LAST_USED_EVERY = timedelta(minutes=1)  # how often a key's "last used" time is written


def api_key_principal(key: str) -> ApiPrincipal:
    """The caller an API key names; looked up at every request, so a revoked key stops at once."""
    row = ApiKey.objects.filter(digest=ApiKey.digest_of(key), revoked_at__isnull=True).first()
    if row is None:
        raise exceptions.AuthenticationFailed("The API key is not valid, or it was revoked.")
    now = timezone.now()
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_EVERY:
        ApiKey.objects.filter(pk=row.pk).update(last_used_at=now)
    return ApiPrincipal(name=f"api-key:{row.name}", capabilities=SCOPE_CAPABILITIES[row.scope])


class BearerAuthentication(BaseAuthentication):
    """An API key (apk_...) or, with AUTOPATCH_AUTH=entra, an Entra access token (a JWT)."""

    def authenticate(self, request):
        header = get_authorization_header(request).split()
        if not header:
            return None
        if header[0].lower() != b"bearer":
            raise exceptions.AuthenticationFailed("Send the key or token as: Authorization: Bearer <key>.")
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("The Authorization header is malformed: Bearer <key>.")
        try:
            credential = header[1].decode("ascii")
        except UnicodeDecodeError as exc:
            raise exceptions.AuthenticationFailed("The key or token is malformed.") from exc
        if credential.startswith(ApiKey.PREFIX):
            return api_key_principal(credential), None
        if credential.count(".") == 2:
            if settings.AUTOPATCH_AUTH != "entra":
                raise exceptions.AuthenticationFailed(
                    "Entra access tokens are taken only with Entra sign-in (AUTOPATCH_AUTH=entra); use an API key."
                )
            try:
                claims = tokens.verified_claims(credential)
            except tokens.TokenRefused as exc:
                raise exceptions.AuthenticationFailed(str(exc)) from exc
            return tokens.principal(claims), claims
        raise exceptions.AuthenticationFailed("The key or token is malformed.")

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'


class PortalSessionAuthentication(SessionAuthentication):
    """A signed-in portal user (the API reference page, scripts in the browser); CSRF applies to writes."""


class BearerScheme(OpenApiAuthenticationExtension):
    """How the OpenAPI document describes BearerAuthentication."""

    target_class = BearerAuthentication
    name = "bearer"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key (apk_...) or, with Entra sign-in, an Entra access token for the portal's app.",
        }


class PortalSessionScheme(OpenApiAuthenticationExtension):
    target_class = PortalSessionAuthentication
    name = "portalSession"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "cookie", "name": "sessionid"}
