# Every target installs what it needs into .venv first; each can be run again safely.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PIP := $(PY) -m pip install --quiet --disable-pip-version-check

.PHONY: install run test lint bench lock tools browser clean

install: $(STAMP)

# Development installs requirements-dev.txt: the production set (requirements.txt, all the image gets) plus
# the tools to test, lint and type-check.
$(STAMP): pyproject.toml requirements.txt requirements-dev.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) is needed"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) -r requirements-dev.txt
	$(PIP) --no-deps -e .
	touch $(STAMP)

# From Debian: Chromium for the browser tests (Playwright's own browser download cannot work here), and Caddy,
# with which the suite checks the Caddyfile.
tools:
	@test -x /usr/bin/chromium -a -x /usr/bin/caddy || { (apt-get update -qq || true) && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium caddy >/dev/null; }

browser: tools

# HOST and PORT choose where the portal listens (127.0.0.1:8000); AUTOPATCH_DEMO_PASSWORD sets the demo
# accounts' password. Ctrl-C stops web, worker and beat.
run: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput -v0
	$(PY) manage.py create_demo_accounts
	$(PY) manage.py deploy_readiness_script
	$(PY) manage.py discover
	bin/run-portal

test: install tools
	@$(MAKE) --no-print-directory lint
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) manage.py makemigrations --check --dry-run
	$(PY) -m mypy

bench: install
	$(PY) bench/discovery.py

# Resolve the pins again after changing pyproject.toml: production first, then development on top of it
# (constrained to the production pins, so both sets agree).
LOCK := .venv-lock
lock:
	rm -rf $(LOCK) && $(PYTHON) -m venv $(LOCK)
	$(LOCK)/bin/pip install --quiet -e .
	$(LOCK)/bin/pip freeze --exclude-editable | grep -v '^-e' > $(LOCK)/production.txt
	$(LOCK)/bin/pip install --quiet -c $(LOCK)/production.txt -e ".[dev]"
	{ echo "# Production: what the portal needs to run, no test tools. Written by make lock from pyproject.toml."; \
	  cat $(LOCK)/production.txt; } > requirements.txt
	{ echo "# Development: the production set (requirements.txt) plus the tools to test, lint and type-check. Written by make lock."; \
	  echo "-r requirements.txt"; \
	  $(LOCK)/bin/pip freeze --exclude-editable | grep -v '^-e' | grep -vxFf $(LOCK)/production.txt; } > requirements-dev.txt
	rm -rf $(LOCK)

clean:
	rm -rf $(VENV) var
