"""The device table's columns, declared once: the tabs, the column chooser, filters and CSV export use them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from django.db import models
from django.db.models import Case, Expression, F, Func, Value, When
from django.db.models.functions import Coalesce, Concat

from .models import NOT_REPORTED, Device, ReportFreshness, report_freshness, report_freshness_q
from .sightings import last_discovered


def text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S UTC")
    return str(value)


def _string(value: str | None) -> str:
    return "" if value is None else value


class UtcText(Func):
    """A date and time as the blade writes it ("2026-11-29 18:34:37 UTC"), formatted by the database: an export
    of 100,000 rows otherwise spends a third of its time parsing and formatting datetimes in Python."""

    output_field = models.CharField()

    def as_postgresql(self, compiler, connection, **extra):
        template = "to_char(%(expressions)s AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS \"UTC\"')"
        return self.as_sql(compiler, connection, template=template, **extra)

    def as_sqlite(self, compiler, connection, **extra):
        # Django stores SQLite datetimes as UTC text; "%%%%" becomes "%%" in the SQL, which the backend turns into "%".
        template = "strftime('%%%%Y-%%%%m-%%%%d %%%%H:%%%%M:%%%%S UTC', %(expressions)s)"
        return self.as_sql(compiler, connection, template=template, **extra)


@dataclass(frozen=True)
class Column:
    key: str  # used in URLs and the saved choice
    title: str  # header in the table and the CSV
    field: str  # model field it reads and sorts by ("a__b" follows a relation)
    default: bool = False
    sortable: bool = True
    display: Callable[[Any], str] | None = (
        None  # the stored value as shown, when not its choice label or text
    )
    sort_field: str | None = None  # what it sorts by, when not its own field (the ring by ring order)
    # The text `display` gives, as the database writes it for an export (display's twin; a test holds them equal).
    export_text: Callable[[], Expression] | None = None
    # A value the database works out from the stored one (sort_field, which it sorts by): `field` then names it
    # as querysets annotate it (queries.with_columns, Device.objects.with_last_discovered).
    annotation: Callable[[], Expression] | None = None

    def order_by(self) -> Expression:
        """What the column sorts by (each has an index led by the tab: devices.models.SORTED_FIELDS)."""
        return F(self.sort_field or self.field)

    @property
    def stored(self) -> str:
        """The stored field the value comes from ("a__b" follows a relation)."""
        return self.sort_field if self.annotation is not None and self.sort_field else self.field

    def model_field(self) -> models.Field:
        model: Any = Device
        *relations, name = self.stored.split("__")
        for relation in relations:
            model = model._meta.get_field(relation).related_model
        return model._meta.get_field(name)

    @cache  # noqa: B019 (columns are a fixed set of frozen instances)
    def formatter(self) -> Callable[[Any], str]:
        """The stored value (as values_list reads it) to the text the table and the CSV show."""
        if self.display is not None:
            return self.display
        if "__" not in self.stored:
            labels = self.labels()
            if labels:
                return lambda value: labels.get(value) or text(value)
            if isinstance(self.model_field(), models.CharField | models.TextField):
                return _string
        return text

    @cache  # noqa: B019
    def is_datetime(self) -> bool:
        return isinstance(self.model_field(), models.DateTimeField)

    def labels(self) -> dict[Any, str]:
        """The column's stored values and their labels, for a field with choices (else empty)."""
        if "__" in self.stored:
            return {}
        return {value: str(label) for value, label in Device._meta.get_field(self.stored).flatchoices}

    def export(self) -> Expression:
        """The column's text as the table shows it (formatter), written by the database, never NULL: an export
        of 100,000 rows then reads its rows' text as it writes them, where formatting 2 million cells in Python
        took most of its time. Datetimes as UtcText, choices as their labels, `display` through export_text."""
        if self.display is not None:
            assert self.export_text is not None, f"{self.key}: a column with a display needs its export_text"
            return self.export_text()
        if self.is_datetime():
            return Coalesce(UtcText(self.annotation() if self.annotation else self.field), Value(""))
        if labels := self.labels():
            whens = [When(**{self.field: value}, then=Value(label)) for value, label in labels.items()]
            return Case(*whens, default=F(self.field), output_field=models.CharField())
        return Coalesce(F(self.field), Value(""), output_field=models.CharField())

    def raw(self, device: Device) -> Any:
        value: Any = device
        for name in self.field.split("__"):
            value = getattr(value, name, None)  # a missing related row (no sighting yet) reads as None
            if value is None:
                return None
        return value

    def value(self, device: Device) -> str:
        return self.formatter()(self.raw(device))


def _report_time(value: datetime | None) -> str:
    """The readiness report's time, marked when it is stale, or that none arrived yet."""
    freshness = report_freshness(value)
    if freshness == ReportFreshness.NONE:
        return NOT_REPORTED
    return f"{text(value)} (stale)" if freshness == ReportFreshness.STALE else text(value)


def _report_time_text() -> Expression:
    """_report_time in SQL, by the same freshness rule (report_freshness_q)."""
    time = UtcText("report_generated_at")
    return Case(
        When(report_freshness_q(ReportFreshness.NONE), then=Value(NOT_REPORTED)),
        When(report_freshness_q(ReportFreshness.STALE), then=Concat(time, Value(" (stale)"))),
        default=time,
        output_field=models.CharField(),
    )


def _added_through(value: str | None) -> str:
    return "Direct" if value == "direct" else text(value)


def _added_through_text() -> Expression:
    return Case(When(added_through="direct", then=Value("Direct")), default=F("added_through"))


COLUMNS: tuple[Column, ...] = (
    Column("device_name", "Device name", "device_name", default=True),
    Column("serial_number", "Serial number", "serial_number", default=True),
    Column("ring", "Ring", "ring", default=True, sort_field="ring_order"),
    Column("readiness_status", "Readiness status", "readiness_status", default=True),
    Column("failed_checks", "Failed checks", "failed_checks", default=True),
    Column("last_intune_checkin", "Last Intune check-in", "last_intune_checkin", default=True),
    Column("azure_ad_device_id", "Azure AD device ID", "azure_ad_device_id"),
    Column("intune_device_id", "Intune device ID", "intune_device_id"),
    Column("model", "Model", "model"),
    Column("manufacturer", "Manufacturer", "manufacturer"),
    Column("os_version", "OS version", "os_version"),
    Column("edition", "Edition", "edition"),
    Column("architecture", "Architecture", "architecture"),
    Column("join_type", "Join type", "join_type"),
    Column("management", "Management", "management"),
    Column("owner", "Owner", "owner"),
    Column("primary_user", "Primary user", "primary_user"),
    Column("ring_assigned_by", "Ring assigned by", "ring_assigned_by"),
    Column("registered_at", "Registered on", "registered_at"),
    Column(
        "added_through",
        "Added through",
        "added_through",
        display=_added_through,
        export_text=_added_through_text,
    ),
    Column(
        "last_discovered_at",
        "Last discovered",
        "last_discovered_at",
        sort_field="sighting__last_discovered_at",
        annotation=last_discovered,
    ),
    Column(
        "report_generated_at",
        "Readiness report",
        "report_generated_at",
        display=_report_time,
        export_text=_report_time_text,
    ),
)
COLUMNS_BY_KEY = {column.key: column for column in COLUMNS}
ANNOTATED = {column.field: column for column in COLUMNS if column.annotation is not None}
DEFAULT_COLUMNS = tuple(column.key for column in COLUMNS if column.default)
# What `manage.py export_devices` writes without --columns: the defaults plus the Azure AD device ID.
EXPORT_COLUMNS = ("device_name", "azure_ad_device_id", *DEFAULT_COLUMNS[1:])


def columns_for(keys: list[str] | tuple[str, ...] | None) -> list[Column]:
    """The columns for a list of keys, in that order; unknown keys raise KeyError (a forged list)."""
    return [COLUMNS_BY_KEY[key] for key in (keys or DEFAULT_COLUMNS)]
