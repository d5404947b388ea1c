"""Strict readers for settings that come from the environment."""

from __future__ import annotations

import os
import secrets
import uuid
from pathlib import Path


class ImproperEnvironment(ValueError):
    pass


def envstr(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def envbool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value in ("True", "true", "1", "yes"):
        return True
    if value in ("False", "false", "0", "no"):
        return False
    raise ImproperEnvironment(f"{name} must be True or False, not {value!r}")


def envint(name: str, default: int, minimum: int | None = None, maximum: int | None = None) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError as exc:
        raise ImproperEnvironment(f"{name} must be a whole number, not {value!r}") from exc
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        bounds = f"from {minimum}" if maximum is None else f"from {minimum} to {maximum}"
        raise ImproperEnvironment(f"{name} must be a whole number {bounds}, not {value!r}")
    return number


def envguid(name: str, hint: str = "") -> str:
    """A GUID in its 8-4-4-4-12 form, lower-cased; empty when unset. `hint` says where to find the right one."""
    value = os.environ.get(name, "").strip()
    if not value:
        return ""
    try:
        if len(value) == 36:
            return str(uuid.UUID(value))
    except ValueError:
        pass
    raise ImproperEnvironment(
        f"{name} must be a GUID such as 72f988bf-86f1-41af-91ab-2d7cd011db47, not {value!r}. {hint}"
    )


def envlist(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def envsecret(name: str, default: str = "") -> str:
    """Read NAME, or the file that NAME_FILE points at (Docker secrets)."""
    path = os.environ.get(f"{name}_FILE")
    if path:
        return Path(path).read_text().strip()
    return os.environ.get(name, default)


def generated_secret(path: Path) -> str:
    """The embedded default's secret key: generated once, then kept under var/."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(50)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    return value
