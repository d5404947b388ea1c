"""Entra ID sign-in: MSAL's authorization code flow with PKCE, ID token checks, and the role a sign-in grants."""

from __future__ import annotations

import time
from typing import Any

import msal
from django.conf import settings

from autopatch_portal.tenant import connection, directory
from autopatch_portal.tenant.connection import Transport
from autopatch_portal.tenant.graph import GraphError
from autopatch_portal.tenant.simulated import signin as simulated_signin

from .roles import Role

LOGIN = "https://login.microsoftonline.com"
SCOPES = ["User.Read"]  # MSAL adds openid, profile and offline_access itself
SESSION_FLOW = "entra_flow"
SESSION_CACHE = "entra_token_cache"

# Directory role template IDs (the `wids` claim) that act as Service Administrator, as the seed says.
GLOBAL_ADMINISTRATOR = "62e90394-69f5-4237-9190-012177145e10"
INTUNE_ADMINISTRATOR = "3a2c62db-5318-420d-8d74-23affee5d9d5"
ADMINISTRATOR_ROLE_TEMPLATES = frozenset({GLOBAL_ADMINISTRATOR, INTUNE_ADMINISTRATOR})
CLOCK_SKEW = 120


class SignInRefused(Exception):
    """The sign-in did not prove who the user is; the message is safe to show and to record."""


# The tenant the portal signs users in with is the connector's: same tenant, app and transport.
SignInConfig = Transport


def issuer(config: Transport) -> str:
    return f"{LOGIN}/{config.tenant_id}/v2.0"


def signin_config() -> Transport:
    """The connector's tenant; a simulated one learns to sign users in."""
    config = connection.transport()
    if config.simulated is not None:
        simulated_signin.install(config.simulated)
    return config


def msal_app(config: Transport, cache: msal.SerializableTokenCache | None = None) -> msal.ConfidentialClientApplication:
    # One application per request: its token cache is the user's session, not shared between users.
    return connection.confidential_app(config, cache if cache is not None else msal.SerializableTokenCache())


def load_cache(session) -> msal.SerializableTokenCache:
    cache = msal.SerializableTokenCache()
    if session.get(SESSION_CACHE):
        cache.deserialize(session[SESSION_CACHE])
    return cache


def save_cache(session, cache: msal.SerializableTokenCache) -> None:
    if cache.has_state_changed:
        session[SESSION_CACHE] = cache.serialize()


def start(config: SignInConfig, redirect_uri: str) -> dict[str, Any]:
    """A new flow (state, nonce, PKCE verifier) to keep in the session; its auth_uri is where the browser goes."""
    return msal_app(config).initiate_auth_code_flow(SCOPES, redirect_uri=redirect_uri, response_mode="query")


def finish(config: SignInConfig, flow: dict[str, Any], answer: dict[str, str], cache: msal.SerializableTokenCache) -> dict:
    """Redeem the code Entra sent back and return the checked ID token claims."""
    if "error" in answer:
        description = (answer.get("error_description") or answer["error"]).splitlines()[0]
        raise SignInRefused(f"Entra ID did not sign you in: {description[:300]}")
    try:
        result = msal_app(config, cache).acquire_token_by_auth_code_flow(flow, answer)
    except ValueError as exc:  # MSAL: state mismatch, or an answer without a code
        raise SignInRefused("The sign-in answer does not belong to the sign-in this browser started "
                            "(state mismatch). Start again.") from exc  # fmt: skip
    except RuntimeError as exc:  # MSAL: the ID token's nonce is not the flow's
        raise SignInRefused("The ID token does not answer this sign-in (nonce mismatch). Start again.") from exc
    if "error" in result:
        description = str(result.get("error_description") or result["error"]).splitlines()[0]
        raise SignInRefused(f"Entra ID refused the sign-in: {description[:300]}")
    claims = result.get("id_token_claims")
    if not claims:
        raise SignInRefused("Entra ID sent no ID token.")
    check_claims(config, claims)
    return claims


def check_claims(config: SignInConfig, claims: dict[str, Any], now: float | None = None) -> None:
    """What MSAL leaves to the application: the token is for this app, from this tenant, and current.
    It came straight from the token endpoint over TLS, which stands in for a signature check."""
    audience = claims.get("aud")
    if audience != config.client_id and not (isinstance(audience, list) and config.client_id in audience):
        raise SignInRefused("The ID token was issued to another application (audience mismatch).")
    if claims.get("iss") != issuer(config) or claims.get("tid") != config.tenant_id:
        raise SignInRefused("The ID token was issued by another tenant (issuer mismatch).")
    moment = now if now is not None else time.time()
    if not isinstance(claims.get("exp"), int | float) or moment - CLOCK_SKEW > claims["exp"]:
        raise SignInRefused("The ID token has expired.")
    if not claims.get("oid"):
        raise SignInRefused("The ID token names no user (no oid claim).")


def has_group_overage(claims: dict[str, Any]) -> bool:
    return "groups" in (claims.get("_claim_names") or {}) or bool(claims.get("hasgroups"))


def member_groups_from_graph(object_id: str) -> set[str]:
    """The user's groups when the ID token could not carry them all (group overage)."""
    try:
        return directory.member_groups(connection.connect().graph, object_id)
    except GraphError as exc:
        raise SignInRefused("Your group memberships could not be read from Microsoft Graph; try again later.") from exc


def role_from_claims(claims: dict[str, Any]) -> str | None:
    """Service Administrator for Global and Intune Administrators and the admin group, Service Reader for the reader group."""
    if ADMINISTRATOR_ROLE_TEMPLATES & set(claims.get("wids") or []):
        return Role.ADMINISTRATOR
    admin_group, reader_group = settings.AUTOPATCH_ADMIN_GROUP_ID, settings.AUTOPATCH_READER_GROUP_ID
    if not admin_group and not reader_group:
        return None
    groups = set(claims.get("groups") or [])
    if has_group_overage(claims):
        groups = member_groups_from_graph(claims["oid"])
    if admin_group and admin_group in groups:
        return Role.ADMINISTRATOR
    if reader_group and reader_group in groups:
        return Role.READER
    return None


def end_session_url(config: SignInConfig, post_logout_redirect_uri: str) -> str:
    from urllib.parse import urlencode

    return f"{config.authority}/oauth2/v2.0/logout?{urlencode({'post_logout_redirect_uri': post_logout_redirect_uri})}"
