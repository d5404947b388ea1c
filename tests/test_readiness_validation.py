"""One check for every readiness report, whatever brought it (the API, the readiness script's output read through
Graph, a tenant file): what the database cannot hold is refused by name, never a database error."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, transaction

from autopatch_portal.tenant.reports import READINESS_CHECK_NAMES
from devices.models import ReadinessReport
from devices.readiness import ingest_reports

GOOD_CHECKS = [{"name": name, "result": "passed", "detail": "ok"} for name in READINESS_CHECK_NAMES]


def report(**changes):
    return {
        "azureADDeviceId": "dev-1",
        "generatedDateTime": "2026-11-29T08:00:00Z",
        "checks": GOOD_CHECKS,
        **changes,
    }


@pytest.mark.django_db
@pytest.mark.parametrize(
    "bad, reason",
    [
        (report(generatedDateTime="2026-11-29T08:00:00"), "has no time zone"),
        (report(generatedDateTime="2026-11-29T08:00:00+15:00"), "beyond 14 hours"),
        (report(generatedDateTime=20261129), "not a date and time"),
        (report(azureADDeviceId="d" * 65), "longer than 64 characters"),
        (report(checks=[{**GOOD_CHECKS[0], "detail": "a\x00b"}]), "NUL character"),
        (report(checks=[{**GOOD_CHECKS[0], "detail": "x" * 2001}]), "at most 2000 characters"),
        (report(checks=[{"name": ["Internet connectivity"], "result": "passed"}]), "name is text"),
        (report(checks=GOOD_CHECKS * 7), "more than 50 checks"),
    ],
)
def test_a_report_the_database_cannot_hold_is_refused_by_name_and_the_rest_are_kept(bad, reason):
    result = ingest_reports([bad, report(azureADDeviceId="dev-2")])
    assert len(result.rejected) == 1 and reason in result.rejected[0]
    assert list(ReadinessReport.objects.values_list("azure_ad_device_id", flat=True)) == ["dev-2"]


@pytest.mark.django_db
def test_a_device_id_holding_a_nul_is_named_without_the_nul():
    result = ingest_reports([report(azureADDeviceId="de\x00v")])
    assert result.rejected == ["'de\\x00v': a value contains a NUL character"] and result.stored_ids == []


@pytest.mark.django_db
@pytest.mark.parametrize("rows", [1, 60])  # one INSERT ... VALUES, and the scratch table with COPY
def test_an_older_report_written_after_a_newer_one_leaves_the_newer_in_place(rows):
    """Two writers at once (a discovery run reading run states, a device posting to the API) can each find no newer
    report than their own before they write; the write itself keeps the newest."""
    from datetime import UTC, datetime

    from devices.bulk import bulk_write

    def reports(hour: int) -> list[ReadinessReport]:
        return [
            ReadinessReport(
                azure_ad_device_id=f"dev-{n}",
                generated_at=datetime(2026, 11, 29, hour, tzinfo=UTC),
                received_at=datetime(2026, 11, 29, hour, tzinfo=UTC),
                checks=[{"name": "Internet connectivity", "result": "passed", "detail": f"at {hour}"}],
            )
            for n in range(rows)
        ]

    fields = {
        "unique_field": "azure_ad_device_id",
        "update_fields": ["generated_at", "checks", "received_at"],
    }
    assert len(bulk_write(reports(10), newer_field="generated_at", **fields)) == rows
    assert bulk_write(reports(8), newer_field="generated_at", **fields) == []
    assert {r.checks[0]["detail"] for r in ReadinessReport.objects.all()} == {"at 10"}
    assert len(bulk_write(reports(12), newer_field="generated_at", **fields)) == rows
    assert {r.checks[0]["detail"] for r in ReadinessReport.objects.all()} == {"at 12"}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("theirs", ["2026-11-29T09:00:00Z", "2026-11-29T07:00:00Z"])
def test_a_report_another_writer_stores_while_new_reports_are_copied_in_leaves_the_newest(theirs):
    """Reports of devices the portal holds none for are copied into the table as they are; when another writer (the
    API, another run) stores a report for one of them after that was read, the copy is refused and every report goes
    through the write that keeps the newest: none is lost, none older stays."""
    ours = [report(azureADDeviceId=f"dev-{n}", generatedDateTime="2026-11-29T08:00:00Z") for n in range(60)]
    stored, release, results = threading.Event(), threading.Event(), []

    def other_writer() -> None:  # its own connection: its report is stored, not yet committed
        try:
            with transaction.atomic():
                ingest_reports([report(azureADDeviceId="dev-7", generatedDateTime=theirs)])
                stored.set()
                release.wait(30)
        finally:
            connection.close()

    def ingest() -> None:
        try:
            results.append(ingest_reports(ours))
        finally:
            connection.close()

    writer = threading.Thread(target=other_writer)
    writer.start()
    assert stored.wait(30)
    ingesting = threading.Thread(target=ingest)
    ingesting.start()
    waited_for_it(connection)  # the copy (PostgreSQL) or the write lock (SQLite) waits for the other writer
    release.set()
    writer.join(30)
    ingesting.join(30)

    newest = max(theirs, "2026-11-29T08:00:00Z")
    kept = dict(ReadinessReport.objects.values_list("azure_ad_device_id", "generated_at"))
    assert len(kept) == 60 and kept["dev-7"].isoformat().replace("+00:00", "Z") == newest
    assert {t.isoformat() for d, t in kept.items() if d != "dev-7"} == {"2026-11-29T08:00:00+00:00"}
    assert results[0].stored == (60 if newest != theirs else 59) and not results[0].rejected


def waited_for_it(connection, timeout: float = 10) -> None:
    """Until another session waits for a lock (PostgreSQL); SQLite shows no waits: a moment for its busy wait."""
    if connection.vendor != "postgresql":
        time.sleep(0.5)
        return
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
            if cursor.fetchone()[0]:
                return
            time.sleep(0.02)
    raise AssertionError("no session waited for the other writer")
