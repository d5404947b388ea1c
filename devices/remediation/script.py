"""The shipped detection script: its text, and the version that tells a deployment it is out of date."""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

SCRIPT_PATH = Path(__file__).with_name("readiness.ps1")
SCRIPT_FILE_NAME = "Autopatch-Portal-Readiness.ps1"
DISPLAY_NAME = "Autopatch Portal readiness checks"
PUBLISHER = "Autopatch Portal"
DESCRIPTION = (
    "Runs the Windows Autopatch post-registration readiness checks on the device and reports them as JSON; "
    "the Autopatch Portal reads the results in every discovery run. Detection only."
)


@cache
def script_text() -> str:
    return SCRIPT_PATH.read_text(encoding="utf-8")


@cache
def script_version() -> str:
    """A hash of the script's text: any change to the shipped script is a new version to deploy."""
    return hashlib.sha256(script_text().encode("utf-8")).hexdigest()[:12]
