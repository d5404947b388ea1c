"""Checks one Graph object before it is staged: JSON types, NUL characters, lengths and time zones.

A record that fails is skipped and named in the run's errors (object ID, property, problem); the rest of
the run goes on, and the device it describes is left as it was. Lengths come from the columns the values
end in, so SQLite (which stores any length) and PostgreSQL (which refuses the whole page) keep the same
data: an identifier too long is a problem, other text is cut to its column. Property types follow Graph's
reference (microsoft-graph-docs-contrib): api-reference/v1.0/resources/device.md (strings, accountEnabled a
Boolean, registrationDateTime a DateTimeOffset), api-reference/v1.0/api/group-list-members.md (members are
directoryObjects with their @odata.type) and api-reference/beta/resources/intune-devices-manageddevice.md
(enums are strings, skuNumber an Int32, configurationManagerClientEnabledFeatures an object, DateTimeOffsets
such as lastSyncDateTime carry their offset).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

from ..models import Device
from .state import RunState

MAX_LISTED = 100  # bad records named one by one in a run's errors; the others are counted


@dataclass(frozen=True)
class Prop:
    """What one property of a Graph object must be; None (Graph's unset) is always accepted."""

    json_type: type
    max_length: int | None = None  # the column's; None: not stored in a column of its own
    identifier: bool = False  # too long is a problem, never cut (a cut ID would name another object)
    moment: bool = False  # an ISO 8601 date and time with its offset

    @property
    def plain_text(self) -> bool:
        """Text whose only possible problem is a NUL character (longer text is cut to its column)."""
        return self.json_type is str and not self.identifier and not self.moment


def column(name: str, identifier: bool = False) -> Prop:
    return Prop(str, Device._meta.get_field(name).max_length, identifier)


@dataclass(frozen=True)
class Shape:
    """One kind of Graph object: how the run's errors name it, the property naming its device, its properties."""

    kind: str
    device_key: str
    props: dict[str, Prop]

    @cached_property
    def checked(self) -> list[tuple[str, Prop, bool]]:
        return [(name, prop, prop.plain_text) for name, prop in self.props.items()]

    @cached_property
    def texts(self) -> list[tuple[str, int, bool, bool]]:
        """The text properties as `sound` reads them: name, the column's length (0: none), identifier, moment."""
        return [
            (name, prop.max_length or 0, prop.identifier, prop.moment)
            for name, prop in self.props.items()
            if prop.json_type is str
        ]

    @cached_property
    def others(self) -> list[tuple[str, type]]:
        """The other properties (true or false, a number, an object), with their JSON type."""
        return [(name, prop.json_type) for name, prop in self.props.items() if prop.json_type is not str]


TEXT, MOMENT = Prop(str), Prop(str, moment=True)
IDS = {"id": column("entra_object_id", True), "deviceId": column("azure_ad_device_id", True)}
MEMBER = Shape("member", "deviceId", {"@odata.type": TEXT, **IDS, "displayName": column("device_name")})
DEVICE = Shape(
    "device",
    "deviceId",
    {
        **IDS,
        "displayName": column("device_name"),
        "operatingSystem": column("operating_system"),
        "operatingSystemVersion": column("os_version"),
        "trustType": TEXT,
        "accountEnabled": Prop(bool),
        "profileType": TEXT,
        "registrationDateTime": MOMENT,
    },
)
MANAGED = Shape(
    "managed device",
    "azureADDeviceId",
    {
        "id": column("intune_device_id", True),
        "azureADDeviceId": column("azure_ad_device_id", True),
        "deviceName": column("device_name"),
        "operatingSystem": column("operating_system"),
        "osVersion": column("os_version"),
        "lastSyncDateTime": MOMENT,
        "managementAgent": TEXT,
        "ownerType": TEXT,
        "skuFamily": TEXT,
        "skuNumber": Prop(int),
        "processorArchitecture": column("architecture"),
        "joinType": TEXT,
        "serialNumber": column("serial_number"),
        "model": column("model"),
        "manufacturer": column("manufacturer"),
        "userPrincipalName": column("primary_user"),
        "configurationManagerClientEnabledFeatures": Prop(dict),
    },
)

JSON_NAMES = {
    str: "a string",
    bool: "true or false",
    int: "a whole number",
    float: "a number",
    dict: "an object",
    list: "a list",
}


def json_name(value: Any) -> str:
    return JSON_NAMES.get(type(value), type(value).__name__)


def has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(has_nul(k) or has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_nul(v) for v in value)
    return False


def problem(value: Any, prop: Prop) -> str:
    """What is wrong with one property's value, or "" (pure)."""
    if value is None:
        return ""
    if type(value) is not prop.json_type:  # (not isinstance: true is no whole number here)
        return f"is {json_name(value)}, not {JSON_NAMES[prop.json_type]}"
    if has_nul(value):
        return "contains a NUL character"
    if prop.identifier and prop.max_length and len(value) > prop.max_length:
        return f"is {len(value)} characters long; at most {prop.max_length} fit"
    if prop.moment and value:
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return f"is not a date and time: {value[:40]!r}"
        if moment.tzinfo is None:
            return f"has no time zone: {value[:40]!r}"
    return ""


def problems(item: dict, shape: Shape) -> list[tuple[str, str]]:
    """Every (property, problem) of one Graph object (pure)."""
    found = []
    for name, prop, plain in shape.checked:
        value = item.get(name)
        # Most values are unset or plain text without a NUL: said here, without a call (300,000 objects a run).
        if value is None or (plain and type(value) is str and "\x00" not in value):
            continue
        if text := problem(value, prop):
            found.append((name, text))
    return found


def sound(item: dict, shape: Shape) -> dict | None:
    """The object normalised (`normalised`) if `problems` finds nothing in it, else None (pure). One pass, each
    check written out: a first run checks 300,000 objects at 100,000 devices, and `problems` then `normalised`
    took 14 us an object (bench/README.md)."""
    cut = None
    for name, length, identifier, moment in shape.texts:
        value = item.get(name)
        if value is None:
            continue
        if type(value) is not str or "\x00" in value:
            return None
        if length and len(value) > length:
            if identifier:
                return None
            cut = cut or {}
            cut[name] = value[:length]
        if moment and value and not is_moment(value):
            return None
    for name, json_type in shape.others:
        value = item.get(name)
        if value is not None and (type(value) is not json_type or (json_type is dict and has_nul(value))):
            return None
    return {**item, **cut} if cut else item


def is_moment(value: str) -> bool:
    """Whether text is an ISO 8601 date and time with its offset (Graph's DateTimeOffset)."""
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).tzinfo is not None
    except ValueError:
        return False


def normalised(item: dict, shape: Shape) -> dict:
    """The object with its text cut to the columns it ends in (pure; checked objects only)."""
    cut = {
        name: item[name][: prop.max_length]
        for name, prop in shape.props.items()
        if prop.max_length and isinstance(item.get(name), str) and len(item[name]) > prop.max_length
    }
    return {**item, **cut} if cut else item


def accept(items: list[dict], shape: Shape, state: RunState) -> list[dict]:
    """The page's sound objects, normalised. Each other one is named in the run's errors, and the device it
    describes is left as it was this run; an unsound member also leaves the registration group's membership
    as it was (as a nested group that cannot be read does)."""
    kept = []
    for item in items:
        if (fine := sound(item, shape)) is not None:
            kept.append(fine)
            continue
        found = problems(item, shape)
        if not found:  # (the two agree: tests/test_discovery_records.py)
            kept.append(normalised(item, shape))
            continue
        device_id = item.get(shape.device_key)
        if isinstance(device_id, str) and all(name != shape.device_key for name, _ in found):
            state.skipped_devices.add(device_id)
        if shape is MEMBER:  # the group was not read whole: nobody is taken to have left it
            state.unreadable_groups.append(f"member {item.get('id')!r}")
        state.counts["skipped_records"] += 1
        if state.counts["skipped_records"] > MAX_LISTED:
            count_unnamed(state.errors, state.counts["skipped_records"] - MAX_LISTED)
            continue
        object_id = (item.get("id") if isinstance(item.get("id"), str) else repr(item.get("id")))[:80]
        details = "; ".join(f"{name} {text}" for name, text in found)
        state.errors.append(
            {
                "stage": f"{shape.kind} record",
                "object_id": object_id,
                "field": ", ".join(name for name, _ in found),
                "message": f"Skipped {shape.kind} {object_id}: {details}.",
            }
        )
    return kept


def count_unnamed(errors: list[dict[str, str]], more: int) -> None:
    """One error line counts the unsound records past the ones named, so that a run's errors stay short."""
    message = f"{more} more unsound records skipped; the first {MAX_LISTED} are named."
    for error in reversed(errors):
        if error["stage"] == "records":
            error["message"] = message
            return
    errors.append({"stage": "records", "message": message})
