"""The container stack as written: docker-compose.yml against the Compose specification, the Dockerfile's contract,
the Caddyfile, the requirement sets, and the settings checks that stop a misconfigured start."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from importlib import resources

import jsonschema
import pytest
from ruamel.yaml import YAML

from .conftest import REPO
from .test_hardening import production_env

PORTAL_SERVICES = ("migrate", "web", "worker", "beat")
TEST_TOOLS = ("pytest", "pytest-django", "playwright", "ruff", "mypy", "check-jsonschema")


@pytest.fixture(scope="module")
def compose() -> dict:
    return YAML(typ="safe").load((REPO / "docker-compose.yml").read_text())


def pins(name: str) -> dict[str, str]:
    found = {}
    for line in (REPO / name).read_text().splitlines():
        if line and not line.startswith(("#", "-r ")):
            package, version = line.split("==")
            found[package.lower()] = version
    return found


def test_the_compose_file_follows_the_compose_specification(compose):
    schema = json.loads(
        (resources.files("check_jsonschema") / "builtin_schemas/vendor/compose-spec.json").read_text()
    )
    jsonschema.validate(compose, schema)


def test_only_the_tls_proxy_is_published_and_it_proxies_the_web_service(compose):
    services = compose["services"]
    assert [name for name, service in services.items() if service.get("ports")] == ["caddy"]
    assert {"80:80", "443:443"} <= set(services["caddy"]["ports"])
    assert "./Caddyfile:/etc/caddy/Caddyfile:ro" in services["caddy"]["volumes"]
    assert services["caddy"]["depends_on"] == {"web": {"condition": "service_healthy"}}


def test_migrations_run_once_before_web_worker_and_beat(compose):
    services = compose["services"]
    assert services["migrate"]["command"] == ["python", "manage.py", "migrate", "--noinput"]
    assert services["migrate"]["restart"] == "no"
    for name in ("web", "worker", "beat"):
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}, (
            name
        )
        assert "migrate" not in " ".join(services[name]["command"]), name


def test_every_service_that_can_be_checked_has_a_healthcheck(compose):
    services = compose["services"]
    assert services["postgres"]["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert "http://127.0.0.1:8000/healthz" in " ".join(services["web"]["healthcheck"]["test"])
    assert "inspect ping" in " ".join(services["worker"]["healthcheck"]["test"])
    for name in PORTAL_SERVICES:
        assert services[name]["depends_on"]["postgres"] == {"condition": "service_healthy"}, name


def test_the_portal_runs_behind_the_proxy_with_the_proxys_host_name(compose):
    env = compose["services"]["web"]["environment"]
    assert env["BEHIND_TLS_PROXY"] == "True" and env["SECURE_SSL_REDIRECT"] == "True"
    assert env["ALLOWED_HOSTS"] == "${AUTOPATCH_HOST:-localhost}"
    assert env["CSRF_TRUSTED_ORIGINS"] == "https://${AUTOPATCH_HOST:-localhost}"
    assert compose["services"]["caddy"]["environment"]["AUTOPATCH_HOST"] == "${AUTOPATCH_HOST:-localhost}"


def test_the_dockerfile_runs_as_a_user_who_may_write_var_and_installs_no_test_tool():
    dockerfile = "\n".join(
        line for line in (REPO / "Dockerfile").read_text().splitlines() if not line.startswith("#")
    )
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.MULTILINE)
    assert users and users[-1] not in ("root", "0")
    assert re.search(rf"chown {users[-1]}:{users[-1]} var\b", dockerfile)
    assert "requirements-dev" not in dockerfile and "[dev]" not in dockerfile
    assert "pip install --no-cache-dir -r requirements.txt" in dockerfile


def test_the_image_leaves_out_local_state_secrets_and_development_files():
    ignored = set((REPO / ".dockerignore").read_text().split())
    assert {".git", ".venv", "var", ".env", "tests", "requirements-dev.txt"} <= ignored


def test_production_requirements_hold_no_test_tool_and_development_adds_them_on_top():
    production, development = pins("requirements.txt"), pins("requirements-dev.txt")
    assert not set(TEST_TOOLS) & set(production)
    assert set(TEST_TOOLS) <= set(development)
    assert "-r requirements.txt" in (REPO / "requirements-dev.txt").read_text().splitlines()
    assert not set(production) & set(development)  # one pin per package


@pytest.mark.skipif(shutil.which("caddy") is None, reason="caddy is not installed (make tools installs it)")
def test_the_caddyfile_is_valid_and_proxies_localhost_to_the_web_service():
    adapted = subprocess.run(
        ["caddy", "adapt", "--config", "Caddyfile", "--validate"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert adapted.returncode == 0, adapted.stderr
    config = json.dumps(json.loads(adapted.stdout))
    assert '"dial": "web:8000"' in config and '"localhost"' in config


def start(extra: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=REPO,
        env=production_env(**extra),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_tenant_domain_name_instead_of_its_id_stops_the_start_with_a_clear_error():
    result = start({"AUTOPATCH_TENANT_ID": "contoso.onmicrosoft.com"})
    assert result.returncode != 0
    assert (
        "AUTOPATCH_TENANT_ID must be a GUID" in result.stderr and "'contoso.onmicrosoft.com'" in result.stderr
    )


def test_a_tenant_id_is_accepted_in_any_case():
    assert start({"AUTOPATCH_TENANT_ID": "72F988BF-86F1-41AF-91AB-2D7CD011DB47"}).returncode == 0


def test_every_variable_the_stack_sets_is_one_the_portal_reads(compose):
    settings_source = (REPO / "autopatch_portal" / "settings.py").read_text()
    read = set(re.findall(r'env\w*\(\s*"([A-Z0-9_]+)"', settings_source))
    for name in PORTAL_SERVICES:
        unknown = set(compose["services"][name]["environment"]) - read
        assert not unknown, (name, unknown)
