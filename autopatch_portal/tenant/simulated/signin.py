"""The simulated tenant's sign-in side: Entra's authorize, code-for-token and end-session endpoints, and Graph's getMemberGroups.

Installed onto a SimulatedTenant through its hooks (extra routes and the token grant), so MSAL runs its
real authorization code flow with PKCE over the same transport swap as the tenant connector. Users come
from the tenant file's "users"; a user's "wids" (directory role template IDs) go into the ID token, and
the groups that hold the user, directly or through nesting, go into its "groups" claim, or, above
`groups_claim_limit`, into the `_claim_names` overage that the portal resolves through Graph.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from .tenant import (
    GRAPH_HOST,
    LOGIN_HOST,
    Response,
    SimulatedTenant,
    entra_error,
    graph_error,
    json_response,
)

GROUPS_CLAIM_LIMIT = 200  # Entra replaces the groups claim of a JWT by an overage reference above this
CODE_LIFETIME = 600


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def encode_jwt(claims: dict[str, Any]) -> str:
    """A token in JWT form. The portal gets it from the token endpoint over TLS, which OpenID Connect
    accepts in place of a signature check (Core 1.0, 3.1.3.7, item 6), so the signature is a stand-in."""
    header = {"typ": "JWT", "alg": "RS256", "kid": "simulated-tenant"}
    parts = [b64url(json.dumps(header).encode()), b64url(json.dumps(claims).encode()), b64url(secrets.token_bytes(32))]
    return ".".join(parts)


@dataclass
class SignIn:
    """Sign-in state of one simulated tenant: issued codes, and knobs for tests."""

    groups_claim_limit: int = GROUPS_CLAIM_LIMIT
    # Registered redirect URIs per client ID; None accepts any (the simulated tenant knows no app registrations).
    redirect_uris: dict[str, list[str]] | None = None
    # Claims forced into the next ID tokens, e.g. {"aud": "another-client"} for a token meant for another app.
    claim_overrides: dict[str, Any] = field(default_factory=dict)
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    issued: list[dict[str, Any]] = field(default_factory=list)  # claims of every ID token issued


def install(tenant: SimulatedTenant) -> SignIn:
    """Teach `tenant` to sign users in; installing twice keeps the first installation."""
    existing = getattr(tenant, "signin", None)
    if isinstance(existing, SignIn):
        return existing
    signin = SignIn()
    tenant.signin = signin  # type: ignore[attr-defined]
    tenant.extra_routes.extend([
        ("GET", LOGIN_HOST, r"/([^/]+)/oauth2/v2\.0/authorize", _authorize),
        ("GET", LOGIN_HOST, r"/([^/]+)/oauth2/v2\.0/logout", _logout),
        ("POST", GRAPH_HOST, r"/v1\.0/users/([^/]+)/getMemberGroups", _get_member_groups),
    ])  # fmt: skip
    other_grants = tenant.token_grant

    def token_grant(form: dict[str, str]) -> Response:
        if form.get("grant_type") == "authorization_code":
            return _redeem_code(tenant, signin, form)
        return other_grants(form)

    tenant.token_grant = token_grant  # type: ignore[method-assign]
    return signin


def find_user(tenant: SimulatedTenant, hint: str) -> dict | None:
    hint = hint.strip().lower()
    for user in tenant.users.values():
        if hint in (user["id"].lower(), str(user.get("userPrincipalName", "")).lower()):
            return user
    return None


def member_groups(tenant: SimulatedTenant, object_id: str) -> list[str]:
    """The IDs of every group that holds `object_id`, directly or through nested groups."""
    found: list[str] = []
    frontier = {object_id}
    while frontier:
        parents = [gid for gid, group in tenant.groups.items() if frontier & set(group["members"]) and gid not in found]
        found.extend(parents)
        frontier = set(parents)
    return found


def _redirect(uri: str, params: dict[str, str]) -> Response:
    parts = urlsplit(uri)
    query = "&".join(filter(None, [parts.query, urlencode(params)]))
    return Response(302, b"", {"Location": urlunsplit(parts._replace(query=query))})


def _known_tenant(tenant: SimulatedTenant, segment: str) -> bool:
    return segment in (tenant.tenant_id, "organizations", "common")


def _authorize(tenant: SimulatedTenant, match, query: dict[str, str], headers, form) -> Response:
    """The browser's visit to Entra's sign-in page; `login_hint` names the user who signs in."""
    signin: SignIn = tenant.signin  # type: ignore[attr-defined]
    if not _known_tenant(tenant, match.group(1)):
        return entra_error(400, "invalid_tenant", f"AADSTS90002: Tenant '{match.group(1)}' not found.")
    client_id, redirect_uri = query.get("client_id", ""), query.get("redirect_uri", "")
    if not client_id or not redirect_uri:
        return entra_error(400, "invalid_request", "AADSTS900144: The request body must contain client_id and redirect_uri.")
    if signin.redirect_uris is not None and redirect_uri not in signin.redirect_uris.get(client_id, []):
        return entra_error(400, "invalid_request", "AADSTS50011: The redirect URI specified in the request does not "
                           "match the redirect URIs configured for the application.")  # fmt: skip
    state = {"state": query["state"]} if "state" in query else {}
    if query.get("response_type") != "code":
        return _redirect(redirect_uri, {"error": "unsupported_response_type",
                                        "error_description": "AADSTS70005: response_type is not supported.", **state})  # fmt: skip
    if query.get("code_challenge_method", "plain") != "S256" or not query.get("code_challenge"):
        return _redirect(redirect_uri, {"error": "invalid_request",
                                        "error_description": "AADSTS50125: PKCE with S256 is required.", **state})  # fmt: skip
    user = find_user(tenant, query.get("login_hint", ""))
    if user is None:
        return _redirect(redirect_uri, {"error": "access_denied",
                                        "error_description": "AADSTS50034: The user account does not exist in this directory.",
                                        **state})  # fmt: skip
    code = secrets.token_urlsafe(32)
    signin.codes[code] = {
        "client_id": client_id, "redirect_uri": redirect_uri, "user_id": user["id"], "nonce": query.get("nonce"),
        "challenge": query["code_challenge"], "scope": query.get("scope", ""), "expires": time.time() + CODE_LIFETIME,
    }  # fmt: skip
    return _redirect(redirect_uri, {"code": code, **state, "session_state": secrets.token_hex(8)})


def _logout(tenant: SimulatedTenant, match, query: dict[str, str], headers, form) -> Response:
    target = query.get("post_logout_redirect_uri")
    return _redirect(target, {}) if target else Response(200, b"You have signed out.", {"Content-Type": "text/plain"})


def _redeem_code(tenant: SimulatedTenant, signin: SignIn, form: dict[str, str]) -> Response:
    client_id = form.get("client_id", "")
    if tenant.client_credentials is not None and tenant.client_credentials.get(client_id) != form.get("client_secret"):
        return entra_error(401, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
    grant = signin.codes.pop(form.get("code", ""), None)  # a code is good for one redemption
    if grant is None or grant["expires"] < time.time():
        return entra_error(400, "invalid_grant", "AADSTS70008: The provided authorization code or refresh token has "
                           "expired due to inactivity. Send a new interactive authorization request.")  # fmt: skip
    if grant["client_id"] != client_id:
        return entra_error(400, "invalid_grant", "AADSTS70000: The provided authorization code was issued to another client.")
    if grant["redirect_uri"] != form.get("redirect_uri"):
        return entra_error(400, "invalid_grant", "AADSTS50148: The redirect_uri does not match the one of the authorization request.")
    verifier = form.get("code_verifier", "")
    if b64url(hashlib.sha256(verifier.encode()).digest()) != grant["challenge"]:
        return entra_error(400, "invalid_grant", "AADSTS501481: The Code_Verifier does not match the code_challenge "
                           "supplied in the authorization request.")  # fmt: skip
    user = tenant.users[grant["user_id"]]
    claims = id_token_claims(tenant, signin, user, client_id, grant["nonce"])
    signin.issued.append(claims)
    client_info = b64url(json.dumps({"uid": user["id"], "utid": tenant.tenant_id}).encode())
    return json_response(200, {
        "token_type": "Bearer", "scope": grant["scope"], "expires_in": 3599, "ext_expires_in": 3599,
        "access_token": tenant.issue_access_token(), "refresh_token": "sim-rt-" + secrets.token_urlsafe(24),
        "id_token": encode_jwt(claims), "client_info": client_info,
    })  # fmt: skip


def id_token_claims(tenant: SimulatedTenant, signin: SignIn, user: dict, client_id: str, nonce: str | None) -> dict:
    now = int(time.time())
    claims: dict[str, Any] = {
        "ver": "2.0", "iss": f"https://{LOGIN_HOST}/{tenant.tenant_id}/v2.0", "aud": client_id,
        "iat": now, "nbf": now, "exp": now + 3600, "tid": tenant.tenant_id, "oid": user["id"],
        "sub": b64url(hashlib.sha256(f"{user['id']}:{client_id}".encode()).digest()),
        "name": user.get("displayName", ""), "preferred_username": user.get("userPrincipalName", ""),
        "uti": secrets.token_urlsafe(16),
    }  # fmt: skip
    if nonce:
        claims["nonce"] = nonce
    if user.get("wids"):
        claims["wids"] = list(user["wids"])
    groups = member_groups(tenant, user["id"])
    if len(groups) > signin.groups_claim_limit:
        claims["_claim_names"] = {"groups": "src1"}
        claims["_claim_sources"] = {"src1": {"endpoint": f"https://graph.windows.net/{tenant.tenant_id}/users/{user['id']}/getMemberObjects"}}
    elif groups:
        claims["groups"] = groups
    claims.update(signin.claim_overrides)
    return claims


def _get_member_groups(tenant: SimulatedTenant, match, query, headers: dict[str, str], form) -> Response:
    if not tenant._authorized(headers):
        return graph_error(401, "InvalidAuthenticationToken", "Access token is empty or invalid.")
    object_id = match.group(1)
    if object_id not in tenant.users:
        return graph_error(404, "Request_ResourceNotFound", f"Resource '{object_id}' does not exist or one of its "
                           "queried reference-property objects are not present.")  # fmt: skip
    return json_response(200, {"@odata.context": f"https://{GRAPH_HOST}/v1.0/$metadata#Collection(Edm.String)",
                               "value": member_groups(tenant, object_id)})  # fmt: skip
