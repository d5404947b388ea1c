"""The simulated tenant's sign-in side: Entra's authorize, token and end-session endpoints, and Graph's /me/checkMemberGroups.

Installed onto a SimulatedTenant through its hooks (extra routes and the token grant), so MSAL runs its
real authorization code flow with PKCE over the same transport swap as the tenant connector. Users come
from the tenant file's "users". What the ID token carries follows the simulated app registration (the
tenant file's optional "appRegistration": {"groupMembershipClaims": ...}, as in an app manifest; without
it, "All"): a user's "wids" (directory role template IDs) and the groups that hold the user, directly or
through nesting, in its "groups" claim, or, above `groups_claim_limit`, the `_claim_names` overage.

Issued codes live in Django's cache (Redis, or files under var/), not in one process: under gunicorn the
worker that redeems a code is seldom the one that issued it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field
from html import escape
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from django.core.cache import cache

from .tenant import (
    GRAPH_HOST,
    LOGIN_HOST,
    Response,
    SimulatedTenant,
    TenantFileError,
    entra_error,
    graph_error,
    json_response,
)

GROUPS_CLAIM_LIMIT = 200  # Entra replaces the groups claim of a JWT by an overage reference above this
CODE_LIFETIME = 600
CODE_KEY = "simulated-tenant:code:"
# groupMembershipClaims of an app manifest -> (groups claim, wids claim) in the ID token.
GROUP_MEMBERSHIP_CLAIMS = {
    "None": (False, False),
    "SecurityGroup": (True, True),
    "DirectoryRole": (False, True),
    "All": (True, True),
}
# checkMemberGroups for the signed-in user: User.Read and GroupMember.Read.All (delegated), at most 20 groups.
CHECK_MEMBER_GROUPS_SCOPE = "GroupMember.Read.All"
CHECK_MEMBER_GROUPS_LIMIT = 20


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def encode_jwt(claims: dict[str, Any]) -> str:
    """A token in JWT form. The portal gets it from the token endpoint over TLS, which OpenID Connect
    accepts in place of a signature check (Core 1.0, 3.1.3.7, item 6), so the signature is a stand-in."""
    header = {"typ": "JWT", "alg": "RS256", "kid": "simulated-tenant"}
    parts = [
        b64url(json.dumps(header).encode()),
        b64url(json.dumps(claims).encode()),
        b64url(secrets.token_bytes(32)),
    ]
    return ".".join(parts)


@dataclass
class SignIn:
    """Sign-in side of one simulated tenant: its app registration's claims, and knobs for tests."""

    groups_claim_limit: int = GROUPS_CLAIM_LIMIT
    group_membership_claims: str = "All"
    # Registered redirect URIs per client ID; None accepts any (the simulated tenant knows no app registrations).
    redirect_uris: dict[str, list[str]] | None = None
    # Claims forced into the next ID tokens, e.g. {"aud": "another-client"} for a token meant for another app.
    claim_overrides: dict[str, Any] = field(default_factory=dict)
    issued: list[dict[str, Any]] = field(default_factory=list)  # claims of every ID token this process issued
    # Delegated access tokens this process issued: token -> (user ID, granted scopes).
    delegated: dict[str, tuple[str, frozenset[str]]] = field(default_factory=dict)


def app_registration(tenant: SimulatedTenant) -> dict[str, Any]:
    """The tenant file's optional "appRegistration", checked; {} without one."""
    found = tenant.app_registration_section or {}
    if not isinstance(found, dict):
        raise TenantFileError("appRegistration must be an object")
    claims = found.get("groupMembershipClaims", "All")
    if claims not in GROUP_MEMBERSHIP_CLAIMS:
        raise TenantFileError(
            f"appRegistration.groupMembershipClaims must be one of {', '.join(GROUP_MEMBERSHIP_CLAIMS)}, "
            f"not {claims!r}"
        )
    return found


def install(tenant: SimulatedTenant) -> SignIn:
    """Teach `tenant` to sign users in; installing twice keeps the first installation."""
    existing = getattr(tenant, "signin", None)
    if isinstance(existing, SignIn):
        return existing
    signin = SignIn(group_membership_claims=app_registration(tenant).get("groupMembershipClaims", "All"))
    tenant.signin = signin  # type: ignore[attr-defined]
    tenant.extra_routes.extend(
        [
            ("GET", LOGIN_HOST, r"/([^/]+)/oauth2/v2\.0/authorize", _authorize),
            ("GET", LOGIN_HOST, r"/([^/]+)/oauth2/v2\.0/logout", _logout),
            ("POST", GRAPH_HOST, r"/v1\.0/me/checkMemberGroups", _check_member_groups),
        ]
    )
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
        parents = [
            gid
            for gid, group in tenant.groups.items()
            if frontier & set(group["members"]) and gid not in found
        ]
        found.extend(parents)
        frontier = set(parents)
    return found


def _answer(redirect_uri: str, params: dict[str, str], response_mode: str) -> Response:
    """Entra's answer to the browser: a redirect carrying the parameters in the query, or, for form_post,
    a page whose form posts them to the redirect URI by itself (a button when script is off)."""
    if response_mode == "form_post":
        fields = "".join(
            f'<input type="hidden" name="{escape(k)}" value="{escape(v)}" />' for k, v in params.items()
        )
        page = (
            f'<html><head><title>Working...</title></head><body><form method="POST" name="hiddenform" '
            f'action="{escape(redirect_uri)}">{fields}<noscript><p>Script is disabled. Click Submit to continue.</p>'
            '<input type="submit" value="Submit" /></noscript></form>'
            '<script language="javascript">document.forms[0].submit();</script></body></html>'
        )
        return Response(200, page.encode(), {"Content-Type": "text/html; charset=utf-8"})
    parts = urlsplit(redirect_uri)
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
        return entra_error(
            400, "invalid_request", "AADSTS900144: The request body must contain client_id and redirect_uri."
        )
    if signin.redirect_uris is not None and redirect_uri not in signin.redirect_uris.get(client_id, []):
        return entra_error(
            400,
            "invalid_request",
            "AADSTS50011: The redirect URI specified in the request does not "
            "match the redirect URIs configured for the application.",
        )
    mode = query.get("response_mode", "query")
    if mode not in ("query", "form_post"):
        return entra_error(
            400, "invalid_request", f"AADSTS900144: response_mode {mode!r} is not supported here."
        )
    state = {"state": query["state"]} if "state" in query else {}

    def refuse(error: str, description: str) -> Response:
        return _answer(redirect_uri, {"error": error, "error_description": description, **state}, mode)

    if query.get("response_type") != "code":
        return refuse("unsupported_response_type", "AADSTS70005: response_type is not supported.")
    if query.get("code_challenge_method", "plain") != "S256" or not query.get("code_challenge"):
        return refuse("invalid_request", "AADSTS50125: PKCE with S256 is required.")
    user = find_user(tenant, query.get("login_hint", ""))
    if user is None:
        return refuse("access_denied", "AADSTS50034: The user account does not exist in this directory.")
    code = secrets.token_urlsafe(32)
    grant = {
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "user_id": user["id"],
        "nonce": query.get("nonce"),
        "challenge": query["code_challenge"],
        "scope": query.get("scope", ""),
        "expires": time.time() + CODE_LIFETIME,
    }
    cache.set(_code_key(tenant, code), grant, CODE_LIFETIME)
    return _answer(redirect_uri, {"code": code, **state, "session_state": secrets.token_hex(8)}, mode)


def _code_key(tenant: SimulatedTenant, code: str) -> str:
    return CODE_KEY + hashlib.sha256(f"{tenant.tenant_id}:{code}".encode()).hexdigest()


def _take_code(tenant: SimulatedTenant, code: str) -> dict[str, Any] | None:
    """The code's grant, once: of two workers redeeming the same code, only the one whose delete removed it wins."""
    key = _code_key(tenant, code)
    grant = cache.get(key)
    if grant is None or not cache.delete(key) or grant["expires"] < time.time():
        return None
    return grant


def _logout(tenant: SimulatedTenant, match, query: dict[str, str], headers, form) -> Response:
    target = query.get("post_logout_redirect_uri")
    if not target:
        return Response(200, b"You have signed out.", {"Content-Type": "text/plain"})
    return Response(302, b"", {"Location": target})


def _redeem_code(tenant: SimulatedTenant, signin: SignIn, form: dict[str, str]) -> Response:
    client_id = form.get("client_id", "")
    if tenant.client_credentials is not None and tenant.client_credentials.get(client_id) != form.get(
        "client_secret"
    ):
        return entra_error(401, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
    grant = _take_code(tenant, form.get("code", ""))
    if grant is None:
        return entra_error(
            400,
            "invalid_grant",
            "AADSTS70008: The provided authorization code or refresh token has "
            "expired due to inactivity. Send a new interactive authorization request.",
        )
    if grant["client_id"] != client_id:
        return entra_error(
            400, "invalid_grant", "AADSTS70000: The provided authorization code was issued to another client."
        )
    if grant["redirect_uri"] != form.get("redirect_uri"):
        return entra_error(
            400,
            "invalid_grant",
            "AADSTS50148: The redirect_uri does not match the one of the authorization request.",
        )
    verifier = form.get("code_verifier", "")
    if b64url(hashlib.sha256(verifier.encode()).digest()) != grant["challenge"]:
        return entra_error(
            400,
            "invalid_grant",
            "AADSTS501481: The Code_Verifier does not match the code_challenge "
            "supplied in the authorization request.",
        )
    user = tenant.users[grant["user_id"]]
    claims = id_token_claims(tenant, signin, user, client_id, grant["nonce"])
    signin.issued.append(claims)
    access_token = tenant.issue_access_token()
    signin.delegated[access_token] = (user["id"], frozenset(grant["scope"].split()))
    client_info = b64url(json.dumps({"uid": user["id"], "utid": tenant.tenant_id}).encode())
    return json_response(
        200,
        {
            "token_type": "Bearer",
            "scope": grant["scope"],
            "expires_in": 3599,
            "ext_expires_in": 3599,
            "access_token": access_token,
            "refresh_token": "sim-rt-" + secrets.token_urlsafe(24),
            "id_token": encode_jwt(claims),
            "client_info": client_info,
        },
    )


def id_token_claims(
    tenant: SimulatedTenant, signin: SignIn, user: dict, client_id: str, nonce: str | None
) -> dict:
    """The ID token's claims; groups and wids as the app registration's groupMembershipClaims asks."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "ver": "2.0",
        "iss": f"https://{LOGIN_HOST}/{tenant.tenant_id}/v2.0",
        "aud": client_id,
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "tid": tenant.tenant_id,
        "oid": user["id"],
        "sub": b64url(hashlib.sha256(f"{user['id']}:{client_id}".encode()).digest()),
        "name": user.get("displayName", ""),
        "preferred_username": user.get("userPrincipalName", ""),
        "uti": secrets.token_urlsafe(16),
    }
    if nonce:
        claims["nonce"] = nonce
    send_groups, send_wids = GROUP_MEMBERSHIP_CLAIMS[signin.group_membership_claims]
    if send_wids and user.get("wids"):
        claims["wids"] = list(user["wids"])
    groups = member_groups(tenant, user["id"]) if send_groups else []
    if len(groups) > signin.groups_claim_limit:
        claims["_claim_names"] = {"groups": "src1"}
        claims["_claim_sources"] = {
            "src1": {
                "endpoint": f"https://graph.windows.net/{tenant.tenant_id}/users/{user['id']}/getMemberObjects"
            }
        }
    elif groups:
        claims["groups"] = groups
    claims.update(signin.claim_overrides)
    return claims


def _check_member_groups(tenant: SimulatedTenant, match, query, headers: dict[str, str], form) -> Response:
    """POST /v1.0/me/checkMemberGroups (api-reference/v1.0/api/directoryobject-checkmembergroups.md): which of
    up to 20 groups hold the signed-in user, transitively; a delegated token with GroupMember.Read.All."""
    signin: SignIn = tenant.signin  # type: ignore[attr-defined]
    token = next((v for k, v in headers.items() if k.lower() == "authorization"), "")[7:]
    if token not in signin.delegated:
        return graph_error(400, "BadRequest", "/me request is only valid with delegated authentication flow.")
    user_id, scopes = signin.delegated[token]
    if CHECK_MEMBER_GROUPS_SCOPE not in scopes:
        return graph_error(
            403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
        )
    try:
        group_ids = json.loads(form.get("_body") or "{}")["groupIds"]
    except (ValueError, KeyError, TypeError):
        return graph_error(400, "Request_BadRequest", "The request body must be a JSON object with groupIds.")
    if not isinstance(group_ids, list) or not 0 < len(group_ids) <= CHECK_MEMBER_GROUPS_LIMIT:
        return graph_error(
            400, "Request_BadRequest", f"groupIds must hold 1 to {CHECK_MEMBER_GROUPS_LIMIT} group IDs."
        )
    holding = set(member_groups(tenant, user_id))
    return json_response(
        200,
        {
            "@odata.context": f"https://{GRAPH_HOST}/v1.0/$metadata#Collection(Edm.String)",
            "value": [gid for gid in group_ids if gid in holding],
        },
    )
