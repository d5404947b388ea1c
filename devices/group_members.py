"""Adding devices to the registration group: devices picked on its page, or a file in the shape of Entra's
bulk-add template, looked up (the copy of the tenant's devices first, then Graph) and added through Graph, each
row answered. A bad file adds nothing. Graph's side: autopatch_portal.tenant.directory.add_group_members."""

from __future__ import annotations

import csv
import io
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.audit import record_event
from accounts.models import AuditEvent
from autopatch_portal.csvfile import LineWriter
from autopatch_portal.tenant import directory
from autopatch_portal.tenant.connection import TenantConnection, connect
from autopatch_portal.tenant.directory import DEVICE_TYPE
from autopatch_portal.tenant.graph import GraphError

from .models import GroupAddition, ObjectKind, TenantObject
from .registration_group import group_id_of

MAX_ROWS = 10_000
# Up to this many rows are added within the web request (ten `$batch` calls at most); more go to the worker,
# which adds them SEND_CHUNK at a time and says how far it got.
INLINE_ROWS = 200
SEND_CHUNK = 200
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
            hint = (
                " (remove the template's example row)"
                if value.lower().startswith("example")
                else " (a user principal name names a user: only devices are added to the registration group)"
                if "@" in value
                else ""
            )
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


# Rows whose device is in the group now: the page lists the others, the ones an admin has to look at.
IN_GROUP = (Outcome.ADDED, Outcome.ADDED_AFTER_RETRY, Outcome.ALREADY)
# The most rows the page lists; every row's answer is in the addition's CSV.
SHOWN_ROWS = INLINE_ROWS
RESULT_HEADER = ("Row", "ID", "Device", "Result", "Detail")


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

    @property
    def listed_whole(self) -> bool:
        """Whether the page lists every row (a short addition) rather than the rows to look at."""
        return len(self.results) <= SHOWN_ROWS

    @property
    def not_in_group(self) -> list[RowResult]:
        return [r for r in self.results if r.outcome not in IN_GROUP]

    @property
    def shown(self) -> list[RowResult]:
        """What the page lists: every row of a short addition; of a long one (up to 10,000 rows, which would
        make a page of megabytes), the first SHOWN_ROWS rows whose device is not in the group."""
        return self.results if self.listed_whole else self.not_in_group[:SHOWN_ROWS]

    def csv_lines(self) -> Iterator[str]:
        """Every row's answer, through the portal's one CSV writer."""
        writer = LineWriter()
        yield writer.header(RESULT_HEADER)
        yield writer.rows([[str(line or ""), *rest] for line, *rest in self.as_rows()])

    def as_rows(self) -> list[list]:
        """The answers as a GroupAddition keeps them."""
        return [[r.row.line, r.row.given, r.name, r.outcome, r.detail] for r in self.results]

    @classmethod
    def from_rows(cls, rows: list[list]) -> AddResult:
        return cls(
            [
                RowResult(Row(line, given), name, outcome, detail)
                for line, given, name, outcome, detail in rows
            ]
        )


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


Progress = Callable[[int, int], None]  # devices sent to Graph so far, devices to send


def add_devices(tenant: TenantConnection, rows: list[Row], progress: Progress | None = None) -> AddResult:
    """Add the devices the rows name to the registration group; each row answered. Raises GraphError when no row
    can be added (the group cannot be found, or the app lacks GroupMember.ReadWrite.All). `progress` hears how
    many devices were sent after every SEND_CHUNK."""
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
    sending = list(to_add)
    answers: list[directory.MemberAdded] = []
    for start in range(0, len(sending), SEND_CHUNK):
        answers += directory.add_group_members(tenant.graph, group_id, sending[start : start + SEND_CHUNK])
        if progress is not None:
            progress(len(answers), len(sending))
    for answer in answers:
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


# -- additions too long for a web request: the worker's part -----------------------------------------------------


def queue_addition(rows: list[Row], source: str, requested_by: str, source_ip: str | None) -> GroupAddition:
    """Keep the rows and hand them to the worker (devices.tasks.add_to_group) once the row is committed."""
    from .tasks import add_to_group

    with transaction.atomic():
        addition = GroupAddition.objects.create(
            requested_by=requested_by,
            source=source[:300],
            source_ip=source_ip,
            rows=[[row.line, row.given] for row in rows],
        )
        add_to_group.delay_on_commit(addition.pk)
    return addition


def carry_out(addition_id: int) -> GroupAddition | None:
    """Add a queued addition's devices, keeping how far it got and each row's answer, and record it in the audit
    log as the request would have. A worker that finds it taken by a live worker (or gone) leaves it; one left
    running by a worker that died (Celery delivers the task again) is taken over."""
    if not GroupAddition.objects.filter(GroupAddition.claimable(), pk=addition_id).update(
        status=GroupAddition.Status.RUNNING, updated_at=timezone.now()
    ):
        return None
    addition = GroupAddition.objects.get(pk=addition_id)
    rows = [Row(line, given) for line, given in addition.rows]

    def progress(done: int, to_send: int) -> None:
        GroupAddition.objects.filter(pk=addition_id).update(
            done=done, to_send=to_send, updated_at=timezone.now()
        )

    audit = {"target": "registration group", "source": addition.source, "addition": addition.pk}
    try:
        result = add_devices(connect(), rows, progress)
    except GraphError as exc:
        addition.status, addition.error = GroupAddition.Status.FAILED, f"Nothing was added. {exc}"
        summary = f"failed: {exc}"
    else:
        addition.status, addition.results = GroupAddition.Status.DONE, result.as_rows()
        summary = result.summary()
        audit.update(added=result.added_ids[:1000], rows=len(rows))
    addition.finished_at = timezone.now()
    addition.save(update_fields=["status", "error", "results", "finished_at"])
    record_event(
        addition.requested_by,
        AuditEvent.Action.GROUP_MEMBERS,
        result=summary[:500],
        source_ip=addition.source_ip,
        **audit,
    )
    return addition
