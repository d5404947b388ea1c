"""Writes realistic simulated tenants of any size: every discovery outcome, nesting, co-management, stale devices."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from ..membership_rules import SEED_HOST_POOL_RULE
from ..reports import READINESS_CHECK_NAMES as READINESS_CHECKS

REGISTRATION_GROUP = "Windows Autopatch Device Registration"
INTUNE_ADMINISTRATOR = "3a2c62db-5318-420d-8d74-23affee5d9d5"  # directory role template ID
NESTED_GROUPS = (
    "Autopatch - Hybrid devices (ConfigMgr collection)",
    "Autopatch - Finance laptops",
    "Autopatch - Branch office PCs",
)
# The seed's Azure Virtual Desktop example: a dynamic group nested in the registration group, whose rule targets
# the session hosts' name prefix and leaves out the Windows 10 multi-session hosts.
HOST_POOL_GROUP = "Windows Autopatch - Host Pool Session Hosts"
HOST_POOL_RULE = SEED_HOST_POOL_RULE
WINDOWS_10_MULTI_SESSION_OS = "Windows 10 Enterprise for Virtual Desktops"
MULTI_SESSION_SKU = 175  # PRODUCT_SERVERRDSH: Windows 10/11 Enterprise multi-session
# The bundled demo tenant (demo_tenant.json) is make_tenant(DEMO_DEVICES, seed=DEMO_SEED) with relative dates.
DEMO_DEVICES, DEMO_SEED = 120, 7
TOO_DEEP_GROUP = "Autopatch - Pilot ring (nested two levels)"
MANUFACTURERS = (
    ("Dell Inc.", ("Latitude 5440", "Latitude 7440", "OptiPlex 7010", "Precision 3660")),
    ("HP", ("EliteBook 840 G10", "ProBook 450 G9", "Elite Mini 800 G9", "ZBook Firefly 14 G10")),
    ("LENOVO", ("ThinkPad T14 Gen 4", "ThinkPad X1 Carbon Gen 11", "ThinkCentre M70q Gen 4")),
    ("Microsoft Corporation", ("Surface Laptop 5", "Surface Pro 9", "Virtual Machine")),
)
BUILDS = ("10.0.19045.5608", "10.0.22631.5039", "10.0.26100.3476", "10.0.19044.4291", "10.0.22621.4890")
# A real tenant's list answers leave a few managed devices' architecture, SKU and workloads blank.
LIST_BLANK_SHARE = 0.02
DEPARTMENTS = ("FIN", "HR", "ENG", "OPS", "SLS", "MKT", "LEG", "IT")
# Outcome of each device and its weight: most pass, and every failure appears.
OUTCOMES = (
    ("ready", 70),
    ("co_managed_ready", 8),
    ("readiness_failed", 6),
    ("not_enrolled", 2),
    ("emulator", 1),
    ("stale_check_in", 2),
    ("personal", 1),
    ("home_edition", 1),
    ("education_edition", 1),
    ("old_build", 1),
    ("arm64", 1),
    ("workloads_on_configmgr", 2),
    ("duplicate_serial", 1),
    ("dual_state", 1),
    ("configmgr_only", 1),
    ("multi_session", 1),
)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class TenantBuilder:
    """Builds a tenant file's content device by device; tests use it to state exactly the tenant they need."""

    def __init__(self, seed: int = 1, now: datetime | None = None):
        self.rng = random.Random(seed)
        self.now = now or datetime.now(UTC).replace(microsecond=0)
        self.tenant_id = str(self._uuid())
        self.registration_group = self.group(REGISTRATION_GROUP)
        self.groups_by_name: dict[str, dict] = {REGISTRATION_GROUP: self.registration_group}
        self.devices: list[dict] = []
        self.managed: list[dict] = []
        self.reports: list[dict] = []
        self.users: list[dict] = []
        self.api_clients: list[dict] = []  # applications that call the portal's API (apiClients)
        self.serial_counter = 0
        # Managed devices whose list answers leave architecture, SKU and workloads blank: a share, and named ones.
        self.list_blank_share = 0.0
        self.list_blank_ids: list[str] = []

    def _uuid(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    def group(self, name: str, parent: dict | None = None) -> dict:
        group = {"id": str(self._uuid()), "displayName": name, "members": []}
        if hasattr(self, "groups_by_name"):
            self.groups_by_name[name] = group
        if parent is not None:
            parent["members"].append(group["id"])
        return group

    def dynamic_group(self, name: str, rule: str, parent: dict | None = None) -> dict:
        """A dynamic device group: the simulated tenant computes its members from `rule`."""
        group = self.group(name, parent=parent)
        group.update(
            {
                "groupTypes": ["DynamicMembership"],
                "membershipRule": rule,
                "membershipRuleProcessingState": "On",
            }
        )
        return group

    def user(self, name: str, member_of: dict | None = None, wids: tuple[str, ...] = ()) -> dict:
        """A user; `wids` are directory role template IDs, which the simulated sign-in puts in the ID token."""
        user = {
            "id": str(self._uuid()),
            "displayName": name,
            "userPrincipalName": f"{name.lower().replace(' ', '.')}@contoso.example",
        }
        if wids:
            user["wids"] = list(wids)
        self.users.append(user)
        if member_of is not None:
            member_of["members"].append(user["id"])
        return user

    def device(
        self,
        name: str | None = None,
        *,
        member_of: dict | None | bool = True,
        trust_type: str = "AzureAd",
        operating_system: str = "Windows",
        os_version: str | None = None,
        managed: bool = True,
        management_agent: str = "mdm",
        owner_type: str = "company",
        join_type: str | None = None,
        sku_number: int | None = 4,
        sku_family: str | None = None,
        architecture: str = "x64",
        serial: str | None = None,
        model: str | None = None,
        manufacturer: str | None = None,
        last_sync_days: float = 1,
        workloads: dict[str, bool] | None = None,
        user: str | None = None,
        report: dict[str, str] | None | bool = False,
        report_age_hours: float = 6,
        list_blank: bool = False,
        physical_ids: list[str] | None = None,
        enrollment_profile: str | None = None,
    ) -> dict:
        """One Entra device and, unless managed=False, its Intune managed device; returns the Entra device.
        With list_blank, Intune's list answers leave the managed device's architecture, SKU and workloads blank."""
        index = len(self.devices) + 1
        name = name or f"{self.rng.choice(DEPARTMENTS)}-{self.rng.choice(('LT', 'DT'))}-{index:06d}"
        device_id = str(self._uuid())
        version = os_version or self.rng.choice(BUILDS)
        maker, models = self.rng.choice(MANUFACTURERS[:3])
        device = {
            "id": str(self._uuid()),
            "deviceId": device_id,
            "displayName": name,
            "operatingSystem": operating_system,
            "operatingSystemVersion": version,
            "trustType": trust_type,
            "accountEnabled": True,
            "profileType": "RegisteredDevice",
            "registrationDateTime": iso(self.now - timedelta(days=self.rng.randint(30, 900))),
            "approximateLastSignInDateTime": iso(self.now - timedelta(hours=self.rng.randint(1, 72))),
            # What Intune writes back to the Entra record of a device it manages (dynamic rules read these).
            "deviceOwnership": owner_type if managed else "unknown",
            "managementType": management_agent if managed else None,
            "enrollmentProfileName": enrollment_profile,
            "physicalIds": list(physical_ids or []),
        }
        self.devices.append(device)
        if member_of is True:
            member_of = self.registration_group
        if isinstance(member_of, dict):
            member_of["members"].append(device["id"])
        if managed:
            if serial is None:
                self.serial_counter += 1
                serial = f"{maker[:2].upper()}{self.serial_counter:08d}"
            joined = join_type or {
                "AzureAd": "azureADJoined",
                "ServerAd": "hybridAzureADJoined",
                "Workplace": "azureADRegistered",
            }.get(trust_type, "unknown")
            upn = user or f"user{index}@contoso.example"
            item: dict[str, Any] = {
                "id": str(self._uuid()),
                "azureADDeviceId": device_id,
                "deviceName": name,
                "operatingSystem": operating_system,
                "osVersion": version,
                "lastSyncDateTime": iso(self.now - timedelta(days=last_sync_days)),
                "managementAgent": management_agent,
                "ownerType": owner_type,
                "skuFamily": sku_family if sku_family is not None else "",
                "skuNumber": sku_number,
                "processorArchitecture": architecture,
                "joinType": joined,
                "serialNumber": serial,
                "model": self.rng.choice(models) if model is None else model,
                "manufacturer": maker if manufacturer is None else manufacturer,
                "userPrincipalName": upn,
            }
            if management_agent.startswith("configurationManager"):
                item["configurationManagerClientEnabledFeatures"] = {
                    "inventory": True,
                    "modernApps": True,
                    "resourceAccess": True,
                    "compliancePolicy": True,
                    "deviceConfiguration": True,
                    "windowsUpdateForBusiness": True,
                    "officeApps": True,
                    **(workloads or {}),
                }
            self.managed.append(item)
            if list_blank:
                self.list_blank_ids.append(item["id"])
        if report:
            self.report(device_id, report if isinstance(report, dict) else {}, age_hours=report_age_hours)
        return device

    def report(self, device_id: str, failed: dict[str, str], age_hours: float = 6) -> dict:
        """A device-side readiness report; `failed` maps failing check names to their detail."""
        report = {
            "azureADDeviceId": device_id,
            "generatedDateTime": iso(self.now - timedelta(hours=age_hours)),
            "checks": [
                {
                    "name": name,
                    "result": "failed" if name in failed else "passed",
                    "detail": failed.get(name, ""),
                }
                for name in READINESS_CHECKS
            ],
        }
        self.reports.append(report)
        return report

    def managed_device_of(self, device: dict) -> dict:
        return next(m for m in self.managed if m["azureADDeviceId"] == device["deviceId"])

    def api_client(self, name: str, roles: tuple[str, ...] = ()) -> dict:
        """An application that calls the portal's API with client credentials; `roles` are its app roles."""
        client = {
            "clientId": str(self._uuid()),
            "clientSecret": f"secret-{name}",
            "displayName": name,
            "roles": list(roles),
        }
        self.api_clients.append(client)
        return client

    def as_json(self, relative_dates: bool = False) -> dict:
        data = {
            "tenantId": self.tenant_id,
            "registrationGroupId": self.registration_group["id"],
            "groups": list(self.groups_by_name.values()),
            "devices": self.devices,
            "managedDevices": self.managed,
            "readinessReports": self.reports,
            "users": self.users,
        }
        if self.api_clients:
            data["apiClients"] = self.api_clients
        if relative_dates:
            data["relativeTo"] = iso(self.now)
        if self.list_blank_share or self.list_blank_ids:
            data["simulation"] = {
                "listBlankShare": self.list_blank_share,
                "listBlankIds": self.list_blank_ids,
            }
        return data


def add_outcome(builder: TenantBuilder, outcome: str, group: dict) -> None:
    """One device with the given discovery outcome, in `group`."""
    rng = builder.rng
    report: dict[str, str] | bool = rng.random() < 0.85
    if outcome == "ready":
        builder.device(member_of=group, sku_number=rng.choice((4, 4, 4, 48, 161)), report=report)
    elif outcome == "co_managed_ready":
        builder.device(
            member_of=group,
            management_agent="configurationManagerClientMdm",
            trust_type="ServerAd",
            report=report,
        )
    elif outcome == "readiness_failed":
        name = rng.choice(READINESS_CHECKS[2:])
        detail = {
            "Windows update policies managed via GPO": "Group Policy sets NoAutoUpdate and WUServer.",
            "Office update policy managed via GPO": "Group Policy sets Office UpdatePath.",
            "Windows Autopatch network endpoints": "Could not reach mmdcustomer.microsoft.com:443.",
            "Microsoft Teams network endpoints": "Could not reach teams.microsoft.com:443.",
            "Microsoft Edge network endpoints": "Could not reach msedge.api.cdp.microsoft.com:443.",
            "Internet connectivity": "No route to the internet from the device.",
        }.get(name, "Check failed on the device.")
        builder.device(member_of=group, report={name: detail})
    elif outcome == "not_enrolled":
        builder.device(member_of=group, managed=False)
    elif outcome == "emulator":
        builder.device(member_of=group, serial="", model="", manufacturer="")
    elif outcome == "stale_check_in":
        builder.device(member_of=group, last_sync_days=rng.randint(29, 120))
    elif outcome == "personal":
        builder.device(member_of=group, trust_type="Workplace", owner_type="personal")
    elif outcome == "home_edition":
        builder.device(member_of=group, sku_number=101)
    elif outcome == "education_edition":
        builder.device(member_of=group, sku_number=121)
    elif outcome == "old_build":
        builder.device(member_of=group, os_version="10.0.17134.1304")
    elif outcome == "arm64":
        builder.device(member_of=group, architecture="arm64")
    elif outcome == "workloads_on_configmgr":
        builder.device(
            member_of=group,
            management_agent="configurationManagerClientMdm",
            trust_type="ServerAd",
            workloads={"officeApps": False, "windowsUpdateForBusiness": rng.random() < 0.5},
        )
    elif outcome == "duplicate_serial":
        first = builder.device(member_of=group)
        builder.device(member_of=group, serial=builder.managed_device_of(first)["serialNumber"])
    elif outcome == "dual_state":
        twin = builder.device(member_of=None, trust_type="ServerAd")
        builder.device(name=twin["displayName"], member_of=group, trust_type="Workplace", managed=False)
    elif outcome == "configmgr_only":
        builder.device(member_of=group, management_agent="configurationManagerClient")
    elif outcome == "multi_session":
        device = builder.device(member_of=group, sku_number=None, sku_family="")
        device["operatingSystem"] = "Windows 10 Enterprise for Virtual Desktops"
    else:
        raise ValueError(f"unknown outcome {outcome}")


def make_tenant(devices: int, seed: int = 1, now: datetime | None = None) -> TenantBuilder:
    """A tenant of about `devices` devices in the registration group, with every outcome, nesting and noise."""
    builder = TenantBuilder(seed=seed, now=now)
    builder.list_blank_share = LIST_BLANK_SHARE
    rng = builder.rng
    registration = builder.registration_group
    nested = [builder.group(name, parent=registration) for name in NESTED_GROUPS]
    too_deep = builder.group(TOO_DEEP_GROUP, parent=nested[1])
    builder.user("Megan Bowen", member_of=registration)
    names = [name for name, _ in OUTCOMES]
    weights = [weight for _, weight in OUTCOMES]
    while len(builder.devices) < devices:
        roll = rng.random()
        group = registration if roll < 0.6 else too_deep if roll < 0.62 else rng.choice(nested)
        add_outcome(builder, rng.choices(names, weights)[0], group)
    # Devices outside the group: a readiness report that arrives before registration, and tenant noise.
    for _ in range(max(1, devices // 20)):
        builder.device(member_of=None, report=rng.random() < 0.5)
    # Someone who may sign in through the simulated Entra ID as a Service Administrator (Intune Administrator).
    builder.user("Adele Vance", wids=(INTUNE_ADMINISTRATOR,))
    add_virtual_desktops(builder)
    return builder


def add_virtual_desktops(builder: TenantBuilder) -> dict:
    """The seed's Azure Virtual Desktop and Windows 365 cases: the host pool's dynamic group nested in the
    registration group (returned), personal persistent session hosts (they register like physical devices),
    Windows 11 multi-session hosts the seed's rule lets through (refused: multi-session), a Windows 10
    multi-session host it leaves out, and an existing Cloud PC added directly."""
    group = builder.dynamic_group(HOST_POOL_GROUP, HOST_POOL_RULE, parent=builder.registration_group)
    vm = {"model": "Virtual Machine", "manufacturer": "Microsoft Corporation", "member_of": None}
    for number in (1, 2):
        builder.device(f"AVD-AP-PD-{number:03d}", os_version="10.0.22631.5039", report=True, **vm)
    for number in (1, 2):
        builder.device(
            f"AVD-AP-MS-{number:03d}", os_version="10.0.22631.5039", sku_number=MULTI_SESSION_SKU, **vm
        )
    builder.device(
        "AVD-AP-MS-W10-01",
        operating_system=WINDOWS_10_MULTI_SESSION_OS,
        os_version="10.0.19045.5608",
        sku_number=MULTI_SESSION_SKU,
        **vm,
    )
    builder.managed[-1]["operatingSystem"] = (
        "Windows"  # Intune's list filters on Windows; Entra names the SKU
    )
    builder.device(
        "CPC-megan-7K2QX",
        os_version="10.0.26100.3476",
        model="Cloud PC Enterprise 2vCPU/8GB/128GB",
        manufacturer="Microsoft Corporation",
        report=True,
    )
    return group


def demo_tenant(now: datetime) -> dict:
    """The content of the bundled demo tenant, with dates relative to `now`."""
    builder = make_tenant(DEMO_DEVICES, seed=DEMO_SEED, now=now)
    # Seed 7 rolls no dual state pair among its 120 devices: one is added so the Dual state report shows one.
    add_outcome(builder, "dual_state", builder.registration_group)
    data = builder.as_json(relative_dates=True)
    data["simulation"] = {"listBlankShare": LIST_BLANK_SHARE}
    return data
