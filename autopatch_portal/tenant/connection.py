"""The connection to a tenant: real Entra ID and Graph, or a simulated tenant behind the same transport.

One cache per process holds, per tenant, the requests session (the transport MSAL and Graph share) and
the app-only MSAL application whose token cache is reused between runs. Sign-in builds its own MSAL
application per request (its token cache is the user's session) on the same session.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Callable
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


_lock = threading.Lock()
_simulated: dict[str, tuple[tuple[float, float], SimulatedTenant]] = {}
_transports: dict[str, Transport] = {}
_apps: dict[str, tuple[requests.Session, msal.ConfidentialClientApplication]] = {}


def tenant_file() -> Path | None:
    """The simulated tenant's file, or None when real Graph credentials are configured."""
    if settings.AUTOPATCH_TENANT_FILE:
        return Path(settings.AUTOPATCH_TENANT_FILE)
    if settings.AUTOPATCH_TENANT_ID and settings.AUTOPATCH_CLIENT_ID and settings.AUTOPATCH_CLIENT_SECRET:
        return None
    return DEMO_TENANT_FILE


def additions_file(path: Path) -> Path:
    """Where a simulated tenant keeps the members the portal added to its groups (under AUTOPATCH_VAR_DIR, never
    beside the tenant file, which may be the bundled demo): every process that loads the tenant applies them, so
    a member added by the web process is found by the worker's next discovery. Delete it to undo the additions."""
    digest = hashlib.sha1(str(path.resolve()).encode(), usedforsecurity=False).hexdigest()[:16]
    return Path(settings.VAR_DIR) / "simulated" / f"added-members-{digest}.json"


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return 0


def _read_additions(path: Path) -> list[tuple[str, str]]:
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return []
    return [(str(i[0]), str(i[1])) for i in items if isinstance(i, list) and len(i) == 2]


def simulated_tenant(path: Path) -> SimulatedTenant:
    """One simulated tenant per file and process, loaded again when the file (or its additions) changes."""
    key = str(path.resolve())
    added = additions_file(path)
    version = (path.stat().st_mtime_ns, _mtime(added))
    with _lock:
        cached = _simulated.get(key)
        if cached is None or cached[0] != version:
            tenant = load_tenant_file(path)
            delta.install(tenant)
            tenant.add_members(_read_additions(added))
            tenant.on_member_added = lambda group_id, member_id: _keep_addition(path, group_id, member_id)
            tenant.health_scripts.keep_in(intune_state_file(key))
            api_tokens.install(tenant)  # its signing keys, and access tokens for the portal's API
            cached = (version, tenant)
            _simulated[key] = cached
        return cached[1]


def _keep_addition(path: Path, group_id: str, member_id: str) -> None:
    """Write an added member to the tenant's additions file (atomically), and note the new version so that this
    process keeps its tenant (and its delta tokens' state) instead of loading it again."""
    added = additions_file(path)
    with _lock:
        items = _read_additions(added)
        items.append((group_id, member_id))
        added.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=added.parent, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(items, out)
        os.replace(temporary, added)
        key = str(path.resolve())
        cached = _simulated.get(key)
        if cached is not None:
            _simulated[key] = ((cached[0][0], _mtime(added)), cached[1])


def intune_state_file(tenant_key: str) -> Path:
    """Where a simulated tenant keeps what the portal created in Intune (its readiness script), so that every
    process of the portal (web, worker, commands) and every reload of the tenant file share it."""
    digest = hashlib.sha256(tenant_key.encode()).hexdigest()[:16]
    return Path(settings.VAR_DIR) / "simulated-intune" / f"{digest}.json"


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
