"""Prerequisite checks (before registration) and readiness checks (from device-side reports).

Each prerequisite check is a small function of one candidate that returns a CheckResult with
a plain-language reason and remediation; evaluate() runs every one and keeps every failure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from autopatch_portal.tenant.directory import BLANKS, CO_MANAGED_AGENTS
from autopatch_portal.tenant.reports import READINESS_CHECK_NAMES

CHECK_IN_WINDOW = timedelta(days=28)
MIN_WINDOWS_10_BUILD = 17763  # Windows 10 1809

INTUNE_OR_CLOUD_ATTACHED = "Intune or Cloud-Attached"
LAST_INTUNE_CHECK_IN = "Last Intune check-in"
WINDOWS_CORPORATE_OWNED = "Windows, corporate-owned device"
WINDOWS_EDITION = "Windows edition"
OS_BUILD_AND_ARCHITECTURE = "Windows OS build and architecture"
CO_MANAGEMENT_WORKLOADS = "Co-management workloads"
UNIQUE_SERIAL_NUMBER = "Unique serial number"

PREREQUISITE_CHECKS = (
    INTUNE_OR_CLOUD_ATTACHED,
    LAST_INTUNE_CHECK_IN,
    WINDOWS_CORPORATE_OWNED,
    WINDOWS_EDITION,
    OS_BUILD_AND_ARCHITECTURE,
    CO_MANAGEMENT_WORKLOADS,
    UNIQUE_SERIAL_NUMBER,
)

READINESS_CHECKS = READINESS_CHECK_NAMES

# Intune's managementAgent values: managed by Intune alone (co-managed with Configuration Manager: CO_MANAGED_AGENTS).
INTUNE_AGENTS = {
    "mdm",
    "easmdm",
    "intuneclient",
    "easintuneclient",
    "intuneaosp",
    "microsoft365managedmdm",
    "windowsmanagementcloudapi",
}
ANY_INTUNE_AGENT = INTUNE_AGENTS | CO_MANAGED_AGENTS  # managed by Intune, alone or with Configuration Manager
CO_MANAGEMENT_WORKLOADS_NEEDED = {
    "windowsUpdateForBusiness": "Windows Update policies",
    "deviceConfiguration": "Device configuration",
    "officeApps": "Office Click-to-Run apps",
}

# Windows product types (the managed device's skuNumber) -> (edition, supported).
EDITIONS_BY_SKU: dict[int, tuple[str, bool]] = {
    4: ("Enterprise", True),
    27: ("Enterprise N", True),
    70: ("Enterprise E", True),
    48: ("Pro", True),
    49: ("Pro N", True),
    161: ("Pro for Workstations", True),
    162: ("Pro for Workstations N", True),
    175: ("Enterprise multi-session", False),  # PRODUCT_SERVERRDSH
    101: ("Home", False),
    98: ("Home N", False),
    99: ("Home China", False),
    100: ("Home Single Language", False),
    121: ("Education", False),
    122: ("Education N", False),
    164: ("Pro Education", False),
    165: ("Pro Education N", False),
    125: ("Enterprise LTSC", False),
    126: ("Enterprise LTSC N", False),
}
MULTI_SESSION_EDITION = "Enterprise multi-session"
SUPPORTED_EDITION_NAMES = "Enterprise or Professional (Pro, Pro for Workstations, and their N editions)"


class CheckResult(NamedTuple):
    """One check's outcome. A tuple: a first discovery at 100,000 devices makes about 1.3 million of them, and a
    frozen dataclass took three times as long to make."""

    name: str
    passed: bool
    reason: str = ""
    remediation: str = ""
    kind: str = "prerequisite"

    def as_stored(self) -> str | dict[str, Any]:
        """The check as a device stores it (expanded() gives it back in full). A passed check with nothing to say is
        its name alone, of the kind its name belongs to; any other is what differs from STORED_DEFAULTS. A first
        discovery at 100,000 devices stores 1.4 million checks: as objects of every key they were about half of
        the device table's rows and 40 % of copying them in; a ready device's 15 as names take 514 bytes, as
        objects of name and result 1,160 (the table 102 MB against 154)."""
        if self.passed and not self.reason and not self.remediation and self.kind == kind_of(self.name):
            return self.name
        stored: dict[str, Any] = {"name": self.name, "passed": self.passed}
        if self.kind != "prerequisite":
            stored["kind"] = self.kind
        if self.reason:
            stored["reason"] = self.reason
        if self.remediation:
            stored["remediation"] = self.remediation
        return stored


# What a stored check's object leaves out (CheckResult.as_stored); rows an earlier release wrote hold every key.
STORED_DEFAULTS: dict[str, Any] = {"kind": "prerequisite", "reason": "", "remediation": ""}
_READINESS_NAMES = frozenset(READINESS_CHECKS)


def kind_of(stored: str | dict[str, Any]) -> str:
    """A stored check's kind: a name alone is a passed check of the kind its name belongs to."""
    if isinstance(stored, str):
        return "readiness" if stored in _READINESS_NAMES else "prerequisite"
    return stored.get("kind", "prerequisite")


def expanded(stored: list[str | dict[str, Any]]) -> list[dict[str, Any]]:
    """A device's stored checks in full: name, kind, passed, reason and remediation each."""
    return [
        {**STORED_DEFAULTS, "name": check, "passed": True, "kind": kind_of(check)}
        if isinstance(check, str)
        else {**STORED_DEFAULTS, **check}
        for check in stored
    ]


@dataclass
class Candidate:
    """One device as Graph describes it: its Entra record and its Intune managed device, if any."""

    entra: dict[str, Any]
    managed: dict[str, Any] | None
    now: datetime
    serial_shared_with: int = 0  # how many other candidate or registered devices share the serial
    hybrid_twin: str = ""  # name of a hybrid joined record of the same device (dual state)

    @property
    def agent(self) -> str:
        return ((self.managed or {}).get("managementAgent") or "").lower()

    @property
    def co_managed(self) -> bool:
        return self.agent in CO_MANAGED_AGENTS

    def not_reported(self, prop: str) -> bool:
        """Intune's list left the property blank and the device's own GET could not be made: its value is not
        known yet, so no check fails on it (the next run looks it up again)."""
        return prop in ((self.managed or {}).get(BLANKS) or ())


def parse_graph_time(value: str | None) -> datetime | None:
    if not value or value.startswith("0001-01-01"):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def passed(name: str) -> CheckResult:
    return PASSED.get(name) or CheckResult(name, True)


def failed(name: str, reason: str, remediation: str) -> CheckResult:
    return CheckResult(name, False, reason, remediation)


def not_reported_yet(name: str, what: str) -> CheckResult:
    """A check that cannot be made yet passes, saying why: a blank Intune has yet to report never fails a device."""
    return CheckResult(
        name, True, f"Intune has not reported the device's {what} yet; it is checked when it does."
    )


def intune_or_cloud_attached(c: Candidate) -> CheckResult:
    name = INTUNE_OR_CLOUD_ATTACHED
    if c.managed is None:
        if c.hybrid_twin:
            return failed(
                name,
                f"This is a stale Azure AD registered record in dual state: the same device is also hybrid "
                f"joined as {c.hybrid_twin!r}, and only that record is enrolled in Intune.",
                "Clean up the stale Azure AD registered record, and add the hybrid joined record to the "
                "registration group instead.",
            )
        return failed(
            name,
            "The device's Azure AD device ID has no Intune managed device.",
            "Enroll the device in Intune, or co-manage it with Configuration Manager.",
        )
    if c.agent not in ANY_INTUNE_AGENT:
        agent = c.managed.get("managementAgent") or "unknown"
        return failed(
            name,
            f"The device is managed by '{agent}', neither by Intune nor co-managed.",
            "Enroll the device in Intune, or enable co-management in Configuration Manager.",
        )
    missing = [
        label
        for key, label in (
            ("serialNumber", "serial number"),
            ("model", "model"),
            ("manufacturer", "manufacturer"),
        )
        if not (c.managed.get(key) or "").strip()
    ]
    if missing:
        return failed(
            name,
            f"Intune reports no {', '.join(missing)} for the device (device emulators "
            "that do not generate them are not supported).",
            "Register a physical device or a supported virtual machine that reports serial "
            "number, model and manufacturer.",
        )
    return passed(name)


def last_intune_check_in(c: Candidate) -> CheckResult:
    name = LAST_INTUNE_CHECK_IN
    synced = parse_graph_time((c.managed or {}).get("lastSyncDateTime"))
    if synced is None:
        return failed(
            name,
            "The device has never checked in with Intune.",
            "Turn the device on, connect it to the internet and sync it from Settings > Accounts > "
            "Access work or school.",
        )
    if c.now - synced > CHECK_IN_WINDOW:
        days = (c.now - synced).days
        return failed(
            name,
            f"The device last checked in with Intune {days} days ago (more than 28).",
            "Turn the device on, connect it to the internet and sync it with Intune.",
        )
    return passed(name)


def windows_corporate_owned(c: Candidate) -> CheckResult:
    name = WINDOWS_CORPORATE_OWNED
    m = c.managed or {}
    os_name = m.get("operatingSystem") or c.entra.get("operatingSystem") or ""
    if not os_name.lower().startswith("windows"):
        return failed(
            name,
            f"The device runs {os_name or 'an unknown operating system'}, not Windows.",
            "Remove the device from the registration group: only Windows devices can be registered.",
        )
    owner = (m.get("ownerType") or m.get("managedDeviceOwnerType") or "").lower()
    if c.managed is not None and owner != "company":
        return failed(
            name,
            f"The device is owned by '{owner or 'unknown'}', not the company (personal "
            "devices are not supported).",
            "Change the device's ownership to Corporate in Intune, or remove it from the group.",
        )
    join = (m.get("joinType") or "").lower()
    trust = (c.entra.get("trustType") or "").lower()
    if (
        join in ("azureadjoined", "hybridazureadjoined")
        or (not join or join == "unknown")
        and trust in ("azuread", "serverad")
    ):
        return passed(name)
    return failed(
        name,
        "The device is Azure AD registered (a personal or BYOD join), not Azure AD joined or "
        "hybrid Azure AD joined.",
        "Join the device to Azure AD, or hybrid join it, then enroll it in Intune.",
    )


def edition_of(c: Candidate) -> tuple[str, bool | None]:
    """The Windows edition and whether it is supported; None when it cannot be told."""
    m = c.managed or {}
    try:
        sku = int(m.get("skuNumber"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        sku = 0
    if sku in EDITIONS_BY_SKU:
        return EDITIONS_BY_SKU[sku]
    family = (m.get("skuFamily") or "").lower().replace(" ", "").replace("-", "")
    text = (c.entra.get("operatingSystem") or "").lower()
    for hint in (family, text):
        if not hint:
            continue
        if "multisession" in hint or "virtual desktops" in hint or "serverrdsh" in hint:
            return MULTI_SESSION_EDITION, False
        if "education" in hint:
            return "Education", False
        if "home" in hint or "core" == hint:
            return "Home", False
        if "ltsc" in hint or "ltsb" in hint:
            return "Enterprise LTSC", False
        if "enterprise" in hint:
            return "Enterprise", True
        if "workstation" in hint:
            return "Pro for Workstations", True
        if "professional" in hint or re.search(r"\bpro\b", hint) or hint == "pro":
            return "Pro", True
    return "", None


def windows_edition(c: Candidate) -> CheckResult:
    name = WINDOWS_EDITION
    edition, supported = edition_of(c)
    if supported:
        return passed(name)
    if supported is None and c.not_reported("skuNumber"):
        return not_reported_yet(name, "Windows edition (SKU)")
    if supported is None:
        return failed(
            name,
            "The Windows edition could not be determined from Intune or Azure AD.",
            f"Make sure the device runs Windows {SUPPORTED_EDITION_NAMES} and syncs with Intune.",
        )
    if edition == MULTI_SESSION_EDITION:
        # The seed: Azure Virtual Desktop personal persistent VMs are supported, multi-session hosts are not.
        return failed(
            name,
            "The device is a Windows Enterprise multi-session host (an Azure Virtual Desktop session host): "
            "Windows Autopatch does not support multi-session hosts, only personal persistent virtual "
            "machines.",
            "Remove the multi-session host from the registration group (in a nested dynamic group, exclude "
            "multi-session hosts in its rule); personal persistent session hosts and Windows 365 Cloud PCs "
            "register like physical devices.",
        )
    return failed(
        name,
        f"The device runs Windows {edition}. Only {SUPPORTED_EDITION_NAMES} are supported.",
        "Upgrade the device to Windows Enterprise or Pro, or remove it from the registration group.",
    )


def is_multi_session(c: Candidate) -> bool:
    """Whether the device is an Azure Virtual Desktop multi-session host (Windows Enterprise multi-session)."""
    return edition_of(c)[0] == MULTI_SESSION_EDITION


def build_of(version: str | None) -> tuple[int, int] | None:
    parts = (version or "").split(".")
    try:
        return int(parts[0]), int(parts[2])
    except (IndexError, ValueError):
        return None


def os_build_and_architecture(c: Candidate) -> CheckResult:
    name = OS_BUILD_AND_ARCHITECTURE
    m = c.managed or {}
    version = m.get("osVersion") or c.entra.get("operatingSystemVersion")
    build = build_of(version)
    if build is None:
        return failed(
            name,
            f"The Windows build could not be read from '{version or ''}'.",
            "Sync the device with Intune so that it reports its OS version.",
        )
    if build[0] != 10 or build[1] < MIN_WINDOWS_10_BUILD:
        return failed(
            name,
            f"The device runs build {version}; Windows 10 1809 (10.0.17763) or later, or "
            "Windows 11, is required.",
            "Update the device to a supported release of Windows 10 or to Windows 11.",
        )
    arch = (m.get("processorArchitecture") or "").lower()
    if c.not_reported("processorArchitecture"):
        return not_reported_yet(name, "processor architecture")
    if arch not in ("x64", "amd64"):
        return failed(
            name,
            f"The device's processor architecture is {arch or 'not reported'}; only x64 is supported.",
            "Register x64 devices only.",
        )
    return passed(name)


def co_management_workloads(c: Candidate) -> CheckResult:
    name = CO_MANAGEMENT_WORKLOADS
    if not c.co_managed:
        return passed(name)
    if c.not_reported("configurationManagerClientEnabledFeatures"):
        return not_reported_yet(name, "co-management workloads")
    features = (c.managed or {}).get("configurationManagerClientEnabledFeatures") or {}
    missing = [label for key, label in CO_MANAGEMENT_WORKLOADS_NEEDED.items() if not features.get(key)]
    if not missing:
        return passed(name)
    return failed(
        name,
        f"Co-managed, but these workloads are still on Configuration Manager: {', '.join(missing)}.",
        "In Configuration Manager, switch the Windows Update policies, Device configuration and Office "
        "Click-to-Run apps workloads to Pilot Intune or Intune.",
    )


def unique_serial_number(c: Candidate) -> CheckResult:
    name = UNIQUE_SERIAL_NUMBER
    if c.serial_shared_with <= 0:
        return passed(name)
    serial = (c.managed or {}).get("serialNumber", "")
    return failed(
        name,
        f"Serial number {serial} is shared with {c.serial_shared_with} other "
        f"device{'s' if c.serial_shared_with > 1 else ''} in the group or already registered.",
        "Remove the duplicate records (stale or re-imaged devices) so that one device has the serial number.",
    )


# A passed check is the same (immutable) value for every device: a first discovery at 100,000 devices makes
# 650,000 of them.
PASSED = {name: CheckResult(name, True) for name in PREREQUISITE_CHECKS}

PREREQUISITES = (
    intune_or_cloud_attached,
    last_intune_check_in,
    windows_corporate_owned,
    windows_edition,
    os_build_and_architecture,
    co_management_workloads,
    unique_serial_number,
)


def evaluate_prerequisites(candidate: Candidate) -> list[CheckResult]:
    """Every prerequisite check, in Autopatch's order; every failure is kept, not only the first."""
    return [check(candidate) for check in PREREQUISITES]


READINESS_REMEDIATION = {
    "Windows OS build, architecture and edition": "Update the device to a supported x64 build of Windows 10/11 Enterprise or Pro.",
    "Windows update policies managed via Intune": "Assign the Windows Autopatch update policies and remove conflicting ones.",
    "Windows update policies managed via GPO": "Remove the Group Policy objects that set Windows Update policies.",
    "Office update policy managed via GPO": "Remove the Group Policy objects that set Office update policies.",
    "Windows Autopatch network endpoints": "Allow the Windows Autopatch service endpoints through proxy and firewall.",
    "Microsoft Teams network endpoints": "Allow the Microsoft Teams endpoints through proxy and firewall.",
    "Microsoft Edge network endpoints": "Allow the Microsoft Edge update endpoints through proxy and firewall.",
    "Internet connectivity": "Make sure the device can reach the internet.",
}


def readiness_results(report_checks: list[dict[str, Any]]) -> list[CheckResult]:
    """The device-side report's checks, each with the remediation the portal offers for it."""
    results = []
    for check in report_checks:
        name = str(check.get("name", ""))
        ok = check.get("result") == "passed"
        results.append(
            CheckResult(  # positional: a keyword took half as long again, for 580,000 checks a first run
                name,
                ok,
                "" if ok else str(check.get("detail") or "The device reported this check as failed."),
                "" if ok else READINESS_REMEDIATION.get(name, "See the device's readiness report."),
                "readiness",
            )
        )
    return results
