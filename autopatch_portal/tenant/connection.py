"""The connection to a tenant: real Entra ID and Graph, or a simulated tenant behind the same transport.

One cache per process holds, per tenant, the requests session (the transport MSAL and Graph share) and
the app-only MSAL application whose token cache is reused between runs. Sign-in builds its own MSAL
application per request (its token cache is the user's session) on the same session.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import msal
import requests
from django.conf import settings

from .graph import GraphClient, client_token_provider
from .msal_http import TimedHttpClient
from .simulated import SimulatedTenant, api_tokens, delta, load_tenant_file, simulated_session

LOGIN = "https://login.microsoftonline.com"
DEMO_TENANT_FILE = Path(__file__).parent / "simulated" / "demo_tenant.json"
SIMULATED_CLIENT_ID = "5e1f0a11-0000-4000-8000-00000000a11e"
SIMULATED_CLIENT_SECRET = "simulated-tenant-secret"  # the simulated tenant's, not a real credential


@dataclass(frozen=True)
class Transport:
    """Who the portal is in a tenant (tenant, app and secret) and the session its requests go through."""

    key: str
    tenant_id: str
    client_id: str
    client_secret: str
    session: requests.Session
    simulated: SimulatedTenant | None

    @property
    def authority(self) -> str:
        return f"{LOGIN}/{self.tenant_id}"


@dataclass
class TenantConnection:
    graph: GraphClient
    tenant_id: str
    client_id: str
    registration_group_id: str  # empty: look the group up by its name
    simulated: SimulatedTenant | None
    session: requests.Session

    def readiness_reports(self) -> Iterable[dict]:
        """Device-side readiness reports the tenant holds. A real tenant's arrive through ingestion."""
        return self.simulated.readiness_reports if self.simulated is not None else ()


_lock = threading.Lock()
_simulated: dict[str, tuple[float, SimulatedTenant]] = {}
_transports: dict[str, Transport] = {}
_apps: dict[str, tuple[requests.Session, msal.ConfidentialClientApplication]] = {}


def tenant_file() -> Path | None:
    """The simulated tenant's file, or None when real Graph credentials are configured."""
    if settings.AUTOPATCH_TENANT_FILE:
        return Path(settings.AUTOPATCH_TENANT_FILE)
    if settings.AUTOPATCH_TENANT_ID and settings.AUTOPATCH_CLIENT_ID and settings.AUTOPATCH_CLIENT_SECRET:
        return None
    return DEMO_TENANT_FILE


def simulated_tenant(path: Path) -> SimulatedTenant:
    """One simulated tenant per file and process, loaded again when the file changes."""
    key = str(path.resolve())
    mtime = path.stat().st_mtime
    with _lock:
        cached = _simulated.get(key)
        if cached is None or cached[0] != mtime:
            tenant = load_tenant_file(path)
            delta.install(tenant)
            api_tokens.install(tenant, path)  # its signing keys, and access tokens for the portal's API
            cached = (mtime, tenant)
            _simulated[key] = cached
        return cached[1]


def transport() -> Transport:
    """The configured tenant's transport, built once per tenant (and per simulated tenant file version)."""
    path = tenant_file()
    if path is not None:
        simulated: SimulatedTenant | None = simulated_tenant(path)
        key = f"sim:{path.resolve()}"
        tenant_id, client_id, secret = simulated.tenant_id, SIMULATED_CLIENT_ID, SIMULATED_CLIENT_SECRET
    else:
        simulated, key = None, "real"
        tenant_id, client_id = settings.AUTOPATCH_TENANT_ID, settings.AUTOPATCH_CLIENT_ID
        secret = settings.AUTOPATCH_CLIENT_SECRET
    with _lock:
        found = _transports.get(key)
        if (
            found is None
            or found.simulated is not simulated
            or ((found.tenant_id, found.client_id, found.client_secret) != (tenant_id, client_id, secret))
        ):
            # A reloaded tenant file or new credentials replace the old transport and its app, which are
            # then freed: keeping them would hold every version of the tenant in memory.
            if found is not None:
                _apps.pop(key, None)
            session = simulated_session(simulated) if simulated is not None else requests.Session()
            found = _transports[key] = Transport(key, tenant_id, client_id, secret, session, simulated)
        return found


def confidential_app(
    link: Transport, token_cache: msal.TokenCache | None = None
) -> msal.ConfidentialClientApplication:
    """An MSAL application on the tenant's transport. Without a token cache, the app-only one, kept so its
    token is reused between runs; with one (a user's sign-in), a new application around that cache."""

    def build() -> msal.ConfidentialClientApplication:
        return msal.ConfidentialClientApplication(
            link.client_id,
            client_credential=link.client_secret,
            authority=link.authority,
            http_client=TimedHttpClient(link.session, settings.AUTOPATCH_ENTRA_TIMEOUT),
            instance_discovery=False,
            token_cache=token_cache,
        )

    if token_cache is not None:
        return build()
    with _lock:
        kept = _apps.get(link.key)
        if kept is None or kept[0] is not link.session:
            kept = _apps[link.key] = (link.session, build())
        return kept[1]


def connect(*, sleep: Callable[[float], None] | None = None) -> TenantConnection:
    link = transport()
    extra = {"sleep": sleep} if sleep is not None else {}
    graph = GraphClient(
        link.session,
        client_token_provider(confidential_app(link)),
        timeout=settings.AUTOPATCH_GRAPH_TIMEOUT,
        max_retries=settings.AUTOPATCH_GRAPH_MAX_RETRIES,
        backoff=settings.AUTOPATCH_GRAPH_BACKOFF_MS / 1000,
        **extra,
    )
    return TenantConnection(
        graph,
        link.tenant_id,
        link.client_id,
        settings.AUTOPATCH_REGISTRATION_GROUP_ID,
        link.simulated,
        link.session,
    )
