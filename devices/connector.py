"""The connection to a tenant: real Entra ID and Graph, or a simulated tenant behind the same transport."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import msal
import requests
from django.conf import settings

from .graph import GraphClient, client_token_provider
from .simulated_tenant import SimulatedTenant, load_tenant_file, simulated_session

DEMO_TENANT_FILE = Path(__file__).parent / "simulated_tenant" / "demo_tenant.json"
SIMULATED_CLIENT_ID = "5e1f0a11-0000-4000-8000-00000000a11e"
SIMULATED_CLIENT_SECRET = "simulated-tenant-secret"  # the simulated tenant's, not a real credential

_lock = threading.Lock()
_simulated: dict[str, tuple[float, SimulatedTenant]] = {}
_apps: dict[tuple, msal.ConfidentialClientApplication] = {}


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
            cached = (mtime, load_tenant_file(path))
            _simulated[key] = cached
        return cached[1]


def confidential_app(client_id: str, secret: str, tenant_id: str, session: requests.Session) -> msal.ConfidentialClientApplication:
    """One MSAL app per credentials and transport, so its token cache is reused between runs."""
    key = (client_id, tenant_id, id(session))
    with _lock:
        app = _apps.get(key)
        if app is None:
            app = msal.ConfidentialClientApplication(
                client_id, client_credential=secret, authority=f"https://login.microsoftonline.com/{tenant_id}",
                http_client=session, instance_discovery=False,
            )  # fmt: skip
            _apps[key] = app
        return app


_sessions: dict[str, requests.Session] = {}


def connect(*, sleep: Callable[[float], None] | None = None) -> TenantConnection:
    path = tenant_file()
    simulated = simulated_tenant(path) if path is not None else None
    if simulated is not None:
        key = f"sim:{id(simulated)}"
        tenant_id, client_id, secret = simulated.tenant_id, SIMULATED_CLIENT_ID, SIMULATED_CLIENT_SECRET
    else:
        key = "real"
        tenant_id, client_id = settings.AUTOPATCH_TENANT_ID, settings.AUTOPATCH_CLIENT_ID
        secret = settings.AUTOPATCH_CLIENT_SECRET
    with _lock:
        session = _sessions.get(key)
        if session is None:
            session = simulated_session(simulated) if simulated is not None else requests.Session()
            _sessions[key] = session
    app = confidential_app(client_id, secret, tenant_id, session)
    extra = {"sleep": sleep} if sleep is not None else {}
    graph = GraphClient(session, client_token_provider(app), timeout=settings.AUTOPATCH_GRAPH_TIMEOUT,
                        max_retries=settings.AUTOPATCH_GRAPH_MAX_RETRIES,
                        backoff=settings.AUTOPATCH_GRAPH_BACKOFF_MS / 1000, **extra)  # fmt: skip
    return TenantConnection(graph, tenant_id, client_id, settings.AUTOPATCH_REGISTRATION_GROUP_ID, simulated, session)
