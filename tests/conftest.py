"""Shared fixtures: tenants built with the TenantBuilder, users per role, a real Celery worker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import connection
from hypothesis import settings as hypothesis_settings

from accounts.roles import Role, assign_role
from autopatch_portal.tenant import connection as tenant_connection
from autopatch_portal.tenant.simulated import SimulatedTenant
from autopatch_portal.tenant.simulated.generator import TenantBuilder
from devices.remediation.deploy import deploy_readiness_script

# The shared tenants of the blade's and the sign-in's tests, for every module.
from tests.blade_tenant import blade_tenant  # noqa: E402, F401
from tests.entra_tenant import entra  # noqa: E402, F401

# Property-based tests draw the same examples on every run: the suite gates every landing, so a failure must be
# one that the change brought, reproducible by running it again.
hypothesis_settings.register_profile("portal", derandomize=True)
hypothesis_settings.load_profile("portal")

PASSWORD = "correct horse battery staple"
REPO = Path(__file__).resolve().parent.parent


def services_configured() -> bool:
    return bool(os.environ.get("REDIS_URL")) and os.environ.get("DATABASE_URL", "").startswith("postgres")


def pytest_collection_modifyitems(config, items):
    """Service-backed tests skip on the embedded default, and fail (never skip) when CI asked for services."""
    if services_configured():
        return
    if os.environ.get("AUTOPATCH_REQUIRE_SERVICES"):
        raise pytest.UsageError(
            "AUTOPATCH_REQUIRE_SERVICES is set but DATABASE_URL (PostgreSQL) or REDIS_URL is not"
        )
    skip = pytest.mark.skip(reason="needs DATABASE_URL on PostgreSQL and REDIS_URL")
    for item in items:
        if "services" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def plain_static_storage(settings):
    """Templates use {% static %}: serve the source files as they are, with no collectstatic manifest needed."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Half the suite's time went to PBKDF2: tests hash with MD5, which proves the same sign-in paths."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def empty_cache():
    """Each test starts with an empty cache: a value cached in one test's database must not answer another's.
    On Redis only the portal's keys go: the cache shares its database with Celery's queue, which clear() empties."""
    redis = getattr(getattr(cache, "_cache", None), "get_client", None)
    if redis is None:
        cache.clear()
        return
    client = redis(write=True)
    keys = list(client.scan_iter(match=f"{cache.key_prefix}:*"))
    if keys:
        client.delete(*keys)


@pytest.fixture
def builder() -> TenantBuilder:
    return TenantBuilder(seed=42)


@pytest.fixture
def use_tenant(request, tmp_path, settings):
    """Write a builder's tenant to a file, point the portal at it, and return the simulated tenant.

    With a database, the readiness script is deployed to it first, through the administration page's function, as
    `make run` does: its run states carry the file's readiness reports to discovery (`deploy=False` leaves it out)."""
    with_db = bool({"db", "transactional_db"} & set(request.fixturenames)) or bool(
        request.node.get_closest_marker("django_db")
    )

    def use(tenant: TenantBuilder | dict, name: str = "tenant.json", deploy: bool = True) -> SimulatedTenant:
        path = tmp_path / name
        data = tenant.as_json() if isinstance(tenant, TenantBuilder) else tenant
        path.write_text(json.dumps(data))
        # A rewrite within the same second keeps the mtime: force the loader to read it again.
        os.utime(path, ns=(time.time_ns(), time.time_ns()))
        settings.AUTOPATCH_TENANT_FILE = str(path)
        simulated = tenant_connection.simulated_tenant(path)
        if deploy and with_db:
            deploy_readiness_script(tenant_connection.connect(), "test fixture")
            simulated.requests.clear()  # tests count the requests their own code makes
        return simulated

    return use


def make_user(username: str, role: str | None):
    user = get_user_model().objects.create_user(username=username, password=PASSWORD)
    assign_role(user, role)
    return user


@pytest.fixture
def alice(db):
    """A Service Administrator."""
    return make_user("alice", Role.ADMINISTRATOR)


@pytest.fixture
def bob(db):
    """A Service Reader."""
    return make_user("bob", Role.READER)


@pytest.fixture
def charlie(db):
    """Signed in, but with no role in the portal."""
    return make_user("charlie", None)


def test_database_url() -> str:
    """The URL of the database the tests use, for processes the tests start."""
    conf = connection.settings_dict
    if conf["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{conf['NAME']}"
    user = conf.get("USER") or "postgres"
    auth = f"{user}:{conf['PASSWORD']}@" if conf.get("PASSWORD") else f"{user}@"
    return f"postgres://{auth}{conf.get('HOST') or '127.0.0.1'}:{conf.get('PORT') or 5432}/{conf['NAME']}"


@pytest.fixture
def celery_worker_process(transactional_db, settings):
    """A real Celery worker in its own process, on the configured broker and the test database."""
    started: list[subprocess.Popen] = []

    def start(extra_env: dict[str, str] | None = None) -> subprocess.Popen:
        env = {
            **os.environ,
            "DATABASE_URL": test_database_url(),
            "AUTOPATCH_VAR_DIR": str(django_settings.VAR_DIR),
            "AUTOPATCH_TENANT_FILE": settings.AUTOPATCH_TENANT_FILE or "",
            **(extra_env or {}),
        }
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "autopatch_portal",
                "worker",
                "--pool",
                "solo",
                "--loglevel",
                "INFO",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-n",
                f"test-{os.getpid()}@%h",
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
