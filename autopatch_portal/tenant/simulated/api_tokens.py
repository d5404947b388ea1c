"""The simulated tenant's signing keys and the access tokens it issues for the portal's own API.

Entra publishes a tenant's token signing keys at the `jwks_uri` of its OpenID configuration
(`/{tenant}/discovery/v2.0/keys`) and signs access tokens with RS256, naming the key in the header's `kid`. A client
of the portal's API (a provisioning service, a script) gets one with client credentials and the scope
`api://{portal client ID}/.default`; the token's `roles` claim carries the app roles an admin granted that client.

The simulated tenant does the same for the clients its tenant file lists under the optional `apiClients`
(`clientId`, `clientSecret`, `displayName`, `roles`), so the portal checks signatures, issuers, audiences and times
with its real code. The private key lives in Django's shared cache, so every worker of a portal publishes and signs
with the same key. References: Microsoft identity platform "Access tokens", "OpenID Connect on the Microsoft
identity platform" (jwks_uri) and "Microsoft identity platform and the OAuth 2.0 client credentials flow".
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.core.cache import cache

from .tenant import LOGIN_HOST, Response, SimulatedTenant, TenantFileError, entra_error, json_response

KEY_CACHE = "simulated-tenant:signing-key:"
KID = "simulated-signing-key-1"
TOKEN_LIFETIME = 3600


def new_private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def b64url_uint(number: int) -> str:
    data = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def public_jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    """The key as Entra publishes one (kty, use, kid, n, e)."""
    numbers = key.public_key().public_numbers()
    return {"kty": "RSA", "use": "sig", "kid": kid, "n": b64url_uint(numbers.n), "e": b64url_uint(numbers.e)}


@dataclass
class ApiTokens:
    """The tenant's API clients (client ID -> its entry of `apiClients`)."""

    tenant: SimulatedTenant
    clients: dict[str, dict[str, Any]] = field(default_factory=dict)

    def signing_key(self) -> rsa.RSAPrivateKey:
        text = cache.get(KEY_CACHE + self.tenant.tenant_id)
        if text is None:
            cache.add(KEY_CACHE + self.tenant.tenant_id, pem(new_private_key()).decode(), None)
            text = cache.get(KEY_CACHE + self.tenant.tenant_id)
        key = serialization.load_pem_private_key(text.encode(), password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        return key

    def claims(self, audience: str, client_id: str, roles: list[str]) -> dict[str, Any]:
        now = int(time.time())
        oid = str(hashlib.sha256(f"{self.tenant.tenant_id}:{client_id}".encode()).hexdigest()[:32])
        return {
            "aud": audience,
            "iss": f"https://{LOGIN_HOST}/{self.tenant.tenant_id}/v2.0",
            "iat": now,
            "nbf": now,
            "exp": now + TOKEN_LIFETIME,
            "azp": client_id,
            "azpacr": "1",
            "oid": oid,
            "sub": oid,
            "tid": self.tenant.tenant_id,
            "roles": list(roles),
            "uti": secrets.token_urlsafe(16),
            "ver": "2.0",
        }

    def sign(self, claims: dict[str, Any], key: rsa.RSAPrivateKey | None = None, kid: str = KID) -> str:
        """A token with these claims, signed with the tenant's key (or `key`, for a test of a forged one)."""
        return jwt.encode(claims, key or self.signing_key(), algorithm="RS256", headers={"kid": kid})


def api_clients(tenant: SimulatedTenant) -> dict[str, dict[str, Any]]:
    found = tenant.api_clients_section or []
    if not isinstance(found, list) or not all(isinstance(c, dict) and c.get("clientId") for c in found):
        raise TenantFileError("apiClients must be a list of objects with clientId, clientSecret and roles")
    return {c["clientId"]: c for c in found}


def install(tenant: SimulatedTenant) -> ApiTokens:
    """Teach `tenant` to publish its signing keys and to issue access tokens for the portal's API (once)."""
    existing = getattr(tenant, "api_tokens", None)
    if isinstance(existing, ApiTokens):
        return existing
    tokens = ApiTokens(tenant, api_clients(tenant))
    tenant.api_tokens = tokens  # type: ignore[attr-defined]

    def keys(tenant_, match, query, headers, form) -> Response:
        if match.group(1) not in (tenant.tenant_id, "common", "organizations"):
            return entra_error(400, "invalid_tenant", f"AADSTS90002: Tenant '{match.group(1)}' not found.")
        return json_response(200, {"keys": [public_jwk(tokens.signing_key(), KID)]})

    tenant.extra_routes.append(("GET", LOGIN_HOST, r"/([^/]+)/discovery/v2\.0/keys", keys))
    graph_grant = tenant._client_credentials

    def client_credentials(form: dict[str, str]) -> Response:
        scope = form.get("scope", "").split()
        resource = next((s.removesuffix("/.default") for s in scope if s.endswith("/.default")), "")
        if not resource or resource.startswith("https://graph.microsoft.com"):
            return graph_grant(form)
        client = tokens.clients.get(form.get("client_id", ""))
        if client is None or client.get("clientSecret") != form.get("client_secret"):
            return entra_error(401, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
        audience = resource.removeprefix("api://")
        token = tokens.sign(tokens.claims(audience, client["clientId"], client.get("roles") or []))
        return json_response(
            200,
            {
                "token_type": "Bearer",
                "expires_in": TOKEN_LIFETIME,
                "ext_expires_in": TOKEN_LIFETIME,
                "access_token": token,
            },
        )

    tenant._client_credentials = client_credentials  # type: ignore[method-assign]
    return tokens
