"""Adding devices to the registration group: devices picked on its page, or a file in the shape of Entra's
bulk-add template, looked up (the copy of the tenant's devices first, then Graph) and added through Graph, each
row answered. A bad file adds nothing. Graph's side: autopatch_portal.tenant.directory.add_group_members."""

from __future__ import annotations

import csv
import io
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

from autopatch_portal.tenant import directory
from autopatch_portal.tenant.connection import TenantConnection
from autopatch_portal.tenant.directory import DEVICE_TYPE

from .models import ObjectKind, TenantObject
from .registration_group import group_id_of

MAX_ROWS = 10_000
MAX_UPLOAD_BYTES = 2 * 1024 * 1024
# Entra's bulk-add template for group members (learn.microsoft.com/entra/identity/users/groups-bulk-import-members):
# an optional "version:v1.0" line, then the column heading "Member object ID or user principal name
# [memberObjectIdOrUpn] Required"; older templates vary the wording, so the heading is recognised by its
# property name. The template's "Example: ..." row must be removed, as Entra asks.
TEMPLATE_PROPERTY = "[memberObjectIdOrUpn]"
TEMPLATE_HEADING = "Member object ID or user principal name [memberObjectIdOrUpn] Required"


class UploadError(ValueError):
    """A file the portal will not add from: nothing is added."""


@dataclass(frozen=True)
class Row:
    line: int  # in the file, 0 for devices picked on the page
    given: str


def parse_upload(content: bytes) -> list[Row]:
    """The rows of a bulk-add file, or UploadError naming what is wrong (and where)."""
    if not content.strip():
        raise UploadError("The file is empty: it needs the template's heading row, then one ID per row.")
    if len(content) > MAX_UPLOAD_BYTES:
        raise UploadError(f"The file is larger than {MAX_UPLOAD_BYTES // 1024 // 1024} MB.")
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UploadError(
            f"The file is not UTF-8 text (byte {exc.start + 1} cannot be read): save it as CSV UTF-8."
        ) from exc
    lines = list(csv.reader(io.StringIO(text)))
    index = 0
    while index < len(lines) and (not lines[index] or lines[index][0].strip().lower().startswith("version:")):
        index += 1
    if index >= len(lines) or TEMPLATE_PROPERTY.lower() not in lines[index][0].lower():
        seen = lines[index][0][:80] if index < len(lines) and lines[index] else ""
        raise UploadError(
            f"The first row is not the template's heading: expected {TEMPLATE_HEADING!r}"
            + (f", found {seen!r}." if seen else ".")
        )
    rows: list[Row] = []
    problems: list[str] = []
    for number, cells in enumerate(lines[index + 1 :], start=index + 2):
        value = cells[0].strip() if cells else ""
        if not value and not any(c.strip() for c in cells):
            continue
        if not is_guid(value):
            hint = " (remove the template's example row)" if value.lower().startswith("example") else ""
            problems.append(f"row {number}: {value[:60]!r} is not an object ID or device ID{hint}")
            continue
        rows.append(Row(number, value.lower()))
    if problems:
        more = f" and {len(problems) - 5} more" if len(problems) > 5 else ""
        raise UploadError("Nothing was added. " + "; ".join(problems[:5]) + more + ".")
    if not rows:
        raise UploadError("The file has the heading but no IDs.")
    if len(rows) > MAX_ROWS:
        raise UploadError(f"The file has {len(rows):,} rows; at most {MAX_ROWS:,} can be added at once.")
    return rows


def parse_picked(values: list[str]) -> list[Row]:
    """The object IDs of devices picked on the page (one field each, or joined by commas)."""
    picked = [i.strip().lower() for value in values for i in value.split(",") if i.strip()]
    if not picked:
        raise UploadError("Pick one or more devices, or choose a file to upload.")
    if len(picked) > MAX_ROWS or not all(is_guid(i) for i in picked):
        raise UploadError("A picked device's ID is not valid.")
    return [Row(0, i) for i in picked]


def is_guid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False


class Outcome:
    ADDED = "Added"
    ADDED_AFTER_RETRY = "Added (throttled, retried)"
    ALREADY = "Already a member"
    NOT_FOUND = "Not found"
    NOT_A_DEVICE = "Not a device"
    FAILED = "Not added"


@dataclass
class RowResult:
    row: Row
    name: str
    outcome: str
    detail: str = ""


@dataclass
class AddResult:
    results: list[RowResult]

    def counts(self) -> Counter[str]:
        return Counter(r.outcome for r in self.results)

    def summary(self) -> str:
        return (
            ", ".join(f"{n} {outcome.lower()}" for outcome, n in sorted(self.counts().items())) or "nothing"
        )

    @property
    def added_ids(self) -> list[str]:
        return [r.row.given for r in self.results if r.outcome in (Outcome.ADDED, Outcome.ADDED_AFTER_RETRY)]


def resolve(tenant: TenantConnection, ids: list[str]) -> dict[str, dict[str, Any] | None]:
    """What each ID names, from the copy of the tenant's device records first, then from Graph."""
    copy = TenantObject.objects.filter(kind=ObjectKind.DEVICE, group_id="")
    found: dict[str, dict[str, Any] | None] = {}
    for object_id, device_id, name in copy.filter(object_id__in=ids).values_list(
        "object_id", "device_id", "display_name"
    ):
        found[object_id] = {
            "@odata.type": DEVICE_TYPE,
            "id": object_id,
            "deviceId": device_id,
            "displayName": name,
        }
    for object_id, device_id, name in copy.filter(device_id__in=ids).values_list(
        "object_id", "device_id", "display_name"
    ):
        found.setdefault(
            device_id,
            {"@odata.type": DEVICE_TYPE, "id": object_id, "deviceId": device_id, "displayName": name},
        )
    unknown = [i for i in ids if i not in found]
    if unknown:
        found.update(directory.look_up_objects(tenant.graph, unknown))
    return found


def add_devices(tenant: TenantConnection, rows: list[Row]) -> AddResult:
    """Add the devices the rows name to the registration group; each row answered. Raises GraphError when no row
    can be added (the group cannot be found, or the app lacks GroupMember.ReadWrite.All)."""
    group_id = group_id_of(tenant)
    unique = list(dict.fromkeys(r.given for r in rows))
    named = resolve(tenant, unique)
    to_add: dict[str, str] = {}  # object ID -> the first ID given for it
    results: dict[str, RowResult] = {}
    for given in unique:
        found = named.get(given)
        if found is None:
            results[given] = RowResult(
                Row(0, given), "", Outcome.NOT_FOUND, "No directory object has this ID."
            )
        elif found.get("@odata.type") != DEVICE_TYPE:
            kind = str(found.get("@odata.type") or "object").rsplit(".", 1)[-1]
            results[given] = RowResult(
                Row(0, given), str(found.get("displayName") or ""), Outcome.NOT_A_DEVICE, f"It is a {kind}."
            )
        elif found["id"] in to_add:
            results[given] = RowResult(
                Row(0, given),
                str(found.get("displayName") or ""),
                Outcome.ALREADY,
                "Named twice in this request.",
            )
        else:
            to_add[found["id"]] = given
            results[given] = RowResult(Row(0, given), str(found.get("displayName") or ""), "")
    for answer in directory.add_group_members(tenant.graph, group_id, list(to_add)):
        result = results[to_add[answer.object_id]]
        if answer.added:
            result.outcome = Outcome.ADDED_AFTER_RETRY if answer.retried else Outcome.ADDED
        elif answer.already:
            result.outcome = Outcome.ALREADY
        elif answer.error is not None and answer.error.status == 404:
            result.outcome, result.detail = Outcome.NOT_FOUND, "Entra ID no longer has this device."
        else:
            result.outcome, result.detail = Outcome.FAILED, str(answer.error)
    return AddResult(
        [
            RowResult(row, results[row.given].name, results[row.given].outcome, results[row.given].detail)
            for row in rows
        ]
    )
