"""Entra ID sign-in: MSAL's authorization code flow with PKCE, ID token checks, and the role a sign-in grants."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msal
import requests
from django.conf import settings
from django.core.cache import cache

from autopatch_portal.tenant import connection, directory
from autopatch_portal.tenant.connection import Transport
from autopatch_portal.tenant.graph import GraphClient, GraphError
from autopatch_portal.tenant.simulated import signin as simulated_signin

from .roles import Role

LOGIN = "https://login.microsoftonline.com"
# MSAL adds openid, profile and offline_access itself. checkMemberGroups for the signed-in user needs
# User.Read and GroupMember.Read.All (api-reference/v1.0/api/directoryobject-checkmembergroups.md).
SIGN_IN_SCOPES = ["User.Read"]
GROUP_SCOPES = ["User.Read", "GroupMember.Read.All"]
SESSION_CACHE = "entra_token_cache"
FLOW_KEY = "entra-flow:"
FLOW_LIFETIME = 600  # seconds from "Sign in with Microsoft" to Entra's answer

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


def role_group_ids() -> list[str]:
    return [
        group for group in (settings.AUTOPATCH_ADMIN_GROUP_ID, settings.AUTOPATCH_READER_GROUP_ID) if group
    ]


def scopes() -> list[str]:
    """Delegated permissions to ask for: reading the user's role groups only when role groups are configured."""
    return GROUP_SCOPES if role_group_ids() else SIGN_IN_SCOPES


def msal_app(
    config: Transport, cache: msal.SerializableTokenCache | None = None
) -> msal.ConfidentialClientApplication:
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
    """A new flow (state, nonce, PKCE verifier); its auth_uri is where the browser goes. Entra answers with
    a form that the browser posts to the redirect URI (form_post, as MSAL recommends)."""
    return msal_app(config).initiate_auth_code_flow(
        scopes(), redirect_uri=redirect_uri, response_mode="form_post"
    )


def _flow_key(state: str) -> str:
    return FLOW_KEY + hashlib.sha256(state.encode()).hexdigest()


def keep_flow(flow: dict[str, Any], next_url: str) -> None:
    """Keep the flow on the server under its state. Entra's answer is a cross-site POST, which does not carry
    the session cookie (SameSite=Lax), so the session cannot hold it; every web worker sees the cache."""
    cache.set(_flow_key(flow["state"]), {"flow": flow, "next": next_url}, FLOW_LIFETIME)


def take_flow(state: str) -> tuple[dict[str, Any], str] | None:
    """The flow started with `state` and where to go after it, once: a second answer finds nothing."""
    key = _flow_key(state)
    kept = cache.get(key)
    if kept is None or not cache.delete(key):
        return None
    return kept["flow"], kept["next"]


@dataclass(frozen=True)
class SignedIn:
    claims: dict[str, Any]  # the ID token's, checked
    access_token: str  # delegated, for Graph as the user


def finish(
    config: SignInConfig, flow: dict[str, Any], answer: dict[str, str], cache: msal.SerializableTokenCache
) -> SignedIn:
    """Redeem the code Entra sent back; the checked ID token claims and the user's Graph token."""
    if "error" in answer:
        description = (answer.get("error_description") or answer["error"]).splitlines()[0]
        raise SignInRefused(f"Entra ID did not sign you in: {description[:300]}")
    try:
        result = msal_app(config, cache).acquire_token_by_auth_code_flow(flow, answer)
    except ValueError as exc:  # MSAL: state mismatch, or an answer without a code
        raise SignInRefused(
            "The sign-in answer does not belong to the sign-in this browser started "
            "(state mismatch). Start again."
        ) from exc
    except RuntimeError as exc:  # MSAL: the ID token's nonce is not the flow's
        raise SignInRefused(
            "The ID token does not answer this sign-in (nonce mismatch). Start again."
        ) from exc
    except requests.RequestException as exc:  # a time-out or a broken connection to Entra ID
        raise SignInRefused("Entra ID did not answer in time; try again in a moment.") from exc
    if "error" in result:
        description = str(result.get("error_description") or result["error"]).splitlines()[0]
        raise SignInRefused(f"Entra ID refused the sign-in: {description[:300]}")
    claims = result.get("id_token_claims")
    if not claims:
        raise SignInRefused("Entra ID sent no ID token.")
    check_claims(config, claims)
    return SignedIn(claims, str(result.get("access_token") or ""))


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


def graph_as_user(config: SignInConfig, access_token: str) -> GraphClient:
    """Graph on the tenant's transport with the signed-in user's delegated token."""
    # Someone is waiting on the sign-in page: one retry at most, not the connector's patient backoff.
    return GraphClient(
        config.session,
        lambda: access_token,
        timeout=settings.AUTOPATCH_GRAPH_TIMEOUT,
        max_retries=min(1, settings.AUTOPATCH_GRAPH_MAX_RETRIES),
        backoff=settings.AUTOPATCH_GRAPH_BACKOFF_MS / 1000,
    )


def role_groups_from_graph(config: SignInConfig, signed_in: SignedIn) -> Callable[[list[str]], set[str]]:
    """Which of the role groups hold the user, asked of Graph as the user (checkMemberGroups, transitive)."""

    def held(group_ids: list[str]) -> set[str]:
        try:
            return directory.check_member_groups(graph_as_user(config, signed_in.access_token), group_ids)
        except GraphError as exc:
            raise SignInRefused(
                "Your group memberships could not be read from Microsoft Graph "
                f"({exc.code or exc.status}); try again later."
            ) from exc

    return held


def role_from_claims(claims: dict[str, Any], held_groups: Callable[[list[str]], set[str]]) -> str | None:
    """Service Administrator for Global and Intune Administrators and the admin group, Service Reader for the
    reader group. The `groups` claim answers when the token carries it whole; without it (the app registration
    does not ask for groups) or on overage (too many groups), `held_groups` asks Graph."""
    if ADMINISTRATOR_ROLE_TEMPLATES & set(claims.get("wids") or []):
        return Role.ADMINISTRATOR
    wanted = role_group_ids()
    if not wanted:
        return None
    if "groups" in claims and not has_group_overage(claims):
        groups = set(claims["groups"] or [])
    else:
        groups = held_groups(wanted)
    admin_group, reader_group = settings.AUTOPATCH_ADMIN_GROUP_ID, settings.AUTOPATCH_READER_GROUP_ID
    if admin_group and admin_group in groups:
        return Role.ADMINISTRATOR
    if reader_group and reader_group in groups:
        return Role.READER
    return None


def end_session_url(config: SignInConfig, post_logout_redirect_uri: str) -> str:
    from urllib.parse import urlencode

    return f"{config.authority}/oauth2/v2.0/logout?{urlencode({'post_logout_redirect_uri': post_logout_redirect_uri})}"
