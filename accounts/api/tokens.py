"""Entra access tokens for the API (AUTOPATCH_AUTH=entra): JWTs checked against the tenant's signing keys.

The keys are the tenant's published JWKS (its OpenID configuration's `jwks_uri`), read through the tenant
connector's HTTP session (so a simulated tenant answers at the transport) and kept in the shared cache. A token is
taken when its signature verifies with the key its `kid` names, its issuer is the tenant (v2.0 or v1.0 tokens),
its audience is the portal's app (client ID or its api:// URI), and it is current (exp, nbf). Its `roles` claim
(app roles) gives it its capabilities (settings AUTOPATCH_API_ADMIN_ROLE, _READER_ROLE, _READINESS_ROLE).
References: Microsoft identity platform "Access tokens" and "Validate tokens" (entra/identity-platform).
"""

from __future__ import annotations

from typing import Any

import jwt
from django.conf import settings
from django.core.cache import cache

from autopatch_portal.tenant import connection

from ..roles import READINESS_ONLY, ROLE_API_CAPABILITIES, Role
from .principals import ApiPrincipal

LOGIN = "https://login.microsoftonline.com"
CLOCK_SKEW = 60  # seconds of leeway on exp and nbf
JWKS_KEY = "api-jwks:"
REFRESH_KEY = "api-jwks-refreshed:"
REFRESH_SECONDS = 300  # an unknown kid fetches the keys again at most this often (keys roll over)


class TokenRefused(Exception):
    """Why a token is not taken; safe to show to the caller."""


def issuers(tenant_id: str) -> list[str]:
    return [f"{LOGIN}/{tenant_id}/v2.0", f"https://sts.windows.net/{tenant_id}/"]


def audiences(client_id: str) -> list[str]:
    return [client_id, f"api://{client_id}"]


def fetch_signing_keys(link: connection.Transport) -> dict[str, dict[str, Any]]:
    """The tenant's published signing keys by kid, from its OpenID configuration's jwks_uri."""
    timeout = settings.AUTOPATCH_ENTRA_TIMEOUT
    try:
        config = link.session.get(f"{link.authority}/v2.0/.well-known/openid-configuration", timeout=timeout)
        config.raise_for_status()
        keys = link.session.get(config.json()["jwks_uri"], timeout=timeout)
        keys.raise_for_status()
        return {key["kid"]: key for key in keys.json()["keys"] if key.get("kid")}
    except Exception as exc:  # network, HTTP error, or a document without what it must hold
        raise TokenRefused("The tenant's signing keys could not be read; try again later.") from exc


def signing_keys(link: connection.Transport, refresh: bool = False) -> dict[str, dict[str, Any]]:
    """The keys, from the cache unless `refresh` (at most once every REFRESH_SECONDS per tenant)."""
    key = JWKS_KEY + link.tenant_id
    keys = None if refresh else cache.get(key)
    if keys is None:
        keys = fetch_signing_keys(link)
        cache.set(key, keys, settings.AUTOPATCH_API_JWKS_SECONDS)
    return keys


def verified_claims(token: str) -> dict[str, Any]:
    """The token's claims once every check passed; TokenRefused says which one did not."""
    link = connection.transport()
    try:
        header = jwt.get_unverified_header(token)
        jwt.decode(token, options={"verify_signature": False})  # its claims are JSON: checked below
    except jwt.PyJWTError as exc:
        raise TokenRefused("The token is malformed (not a JWT).") from exc
    if header.get("alg") != "RS256":
        raise TokenRefused("The token is not signed with RS256.")
    kid = header.get("kid")
    keys = signing_keys(link)
    if kid not in keys and cache.add(REFRESH_KEY + link.tenant_id, True, REFRESH_SECONDS):
        keys = signing_keys(link, refresh=True)  # the tenant may have rolled its keys over
    if kid not in keys:
        raise TokenRefused("The token is signed with a key the tenant does not publish (unknown kid).")
    try:
        key = jwt.PyJWK(keys[kid], algorithm="RS256").key
        claims = jwt.decode(
            token,
            key,
            algorithms=["RS256"],
            audience=audiences(link.client_id),
            issuer=issuers(link.tenant_id),
            leeway=CLOCK_SKEW,
            options={"require": ["exp", "nbf", "iss", "aud"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise TokenRefused("The token has expired.") from exc
    except jwt.ImmatureSignatureError as exc:
        raise TokenRefused("The token is not valid yet (nbf).") from exc
    except jwt.InvalidAudienceError as exc:
        raise TokenRefused("The token was issued for another application (audience).") from exc
    except jwt.InvalidIssuerError as exc:
        raise TokenRefused("The token was issued by another tenant (issuer).") from exc
    except jwt.InvalidSignatureError as exc:
        raise TokenRefused("The token's signature does not verify.") from exc
    except jwt.PyJWTError as exc:
        raise TokenRefused(f"The token is not valid: {exc}.") from exc
    if claims.get("tid", link.tenant_id) != link.tenant_id:
        raise TokenRefused("The token was issued by another tenant (tid).")
    return claims


def principal(claims: dict[str, Any]) -> ApiPrincipal:
    """The caller a token names, with the capabilities of its app roles."""
    roles = set(claims.get("roles") or [])
    capabilities: frozenset[str] = frozenset()
    if settings.AUTOPATCH_API_ADMIN_ROLE in roles:
        capabilities |= ROLE_API_CAPABILITIES[Role.ADMINISTRATOR]
    if settings.AUTOPATCH_API_READER_ROLE in roles:
        capabilities |= ROLE_API_CAPABILITIES[Role.READER]
    if settings.AUTOPATCH_API_READINESS_ROLE in roles:
        capabilities |= READINESS_ONLY
    who = claims.get("preferred_username") or claims.get("upn")
    if not who:  # an application's token (client credentials): its app ID
        who = f"app {claims.get('azp') or claims.get('appid') or claims.get('oid') or '?'}"
    return ApiPrincipal(name=f"entra:{who}"[:256], capabilities=capabilities)
