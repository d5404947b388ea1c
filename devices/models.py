"""Devices the portal knows, their status history, readiness reports and discovery runs."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.db import models
from django.db.models import BooleanField, Case, Exists, OuterRef, Q, Value, When
from django.db.models.functions import Upper
from django.utils import timezone

from autopatch_portal.tenant.directory import BLANKS, DEVICE_TYPE, GROUP_TYPE

from .checks import expanded


class ReadinessStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    READINESS_FAILED = "readiness_failed", "Readiness failed"
    INACTIVE = "inactive", "Inactive"
    PREREQUISITES_FAILED = "prerequisites_failed", "Pre-requisites failed"
    EXCLUDED = "excluded", "Excluded"


class Tab(models.TextChoices):
    READY = "ready", "Ready"
    NOT_READY = "not-ready", "Not ready"
    NOT_REGISTERED = "not-registered", "Not registered"


# Which readiness statuses each tab of the device blade shows.
TAB_STATUSES: dict[str, tuple[str, ...]] = {
    Tab.READY: (ReadinessStatus.ACTIVE,),
    Tab.NOT_READY: (ReadinessStatus.READINESS_FAILED, ReadinessStatus.INACTIVE),
    Tab.NOT_REGISTERED: (ReadinessStatus.PREREQUISITES_FAILED, ReadinessStatus.EXCLUDED),
}


class Ring(models.TextChoices):
    TEST = "test", "Test"
    FIRST = "first", "First"
    FAST = "fast", "Fast"
    BROAD = "broad", "Broad"


class RingAssignedBy(models.TextChoices):
    AUTOPATCH = "autopatch", "Autopatch"
    ADMIN = "admin", "Admin"


class Management(models.TextChoices):
    INTUNE = "intune", "Intune"
    CO_MANAGED = "co_managed", "Co-managed"
    NONE = "none", "Not managed"


class JoinType(models.TextChoices):
    """How the device is joined to Entra ID (Intune's joinType, or the Entra record's trustType)."""

    AZURE_AD_JOINED = "azure_ad_joined", "Azure AD joined"
    HYBRID_AZURE_AD_JOINED = "hybrid_azure_ad_joined", "Hybrid Azure AD joined"
    AZURE_AD_REGISTERED = "azure_ad_registered", "Azure AD registered"


class Owner(models.TextChoices):
    CORPORATE = "corporate", "Corporate"
    PERSONAL = "personal", "Personal"


class ReportFreshness(models.TextChoices):
    """How recent a device's readiness report is: the readiness script runs daily, so a week without one is stale."""

    NONE = "none", "Not reported yet"
    STALE = "stale", "Stale (older than 7 days)"
    FRESH = "fresh", "Fresh"


REPORT_STALE_AFTER = timedelta(days=7)
NOT_REPORTED = "Readiness not reported yet"


def report_freshness(generated_at, now=None) -> str:
    """The freshness of a report generated at `generated_at` (None: no report), as of `now`."""
    if generated_at is None:
        return ReportFreshness.NONE
    return (
        ReportFreshness.STALE
        if (now or timezone.now()) - generated_at > REPORT_STALE_AFTER
        else ReportFreshness.FRESH
    )


def report_freshness_q(freshness: str, now=None) -> Q:
    """The devices whose report has that freshness: the one rule of report_freshness(), for a queryset."""
    limit = (now or timezone.now()) - REPORT_STALE_AFTER
    if freshness == ReportFreshness.NONE:
        return Q(report_generated_at__isnull=True)
    if freshness == ReportFreshness.STALE:
        return Q(report_generated_at__lt=limit)
    return Q(report_generated_at__gte=limit)


# The columns the blade's search and filters read (devices.queries.search, apply_filters). The index of the
# blade's default order, by COVERING_ORDER, carries them: a search or filter in that order is tested in the index
# alone, without reading a row per device it passes over.
COVERING_ORDER = "device_name"
SEARCHED = ("search_name", "search_user", "search_serial", "search_id")  # devices.queries.search
SEARCHED_AND_FILTERED = (
    *SEARCHED,
    "readiness_status",
    "ring",
    "failed_checks",
    "join_type",
    "management",
    "report_generated_at",
)


# The search's own indexes (devices.queries.search): trigrams for a match anywhere in a name or user, text patterns
# for a match at the start of any searched column. PostgreSQL only, so not in Device.Meta.indexes: migration 0019
# made them, from a copy of this list. A first import drops and builds them with the declared ones
# (devices.discovery.indexes.deferrable): kept up row by row, they doubled the time of copying a first run's
# devices in (psql, 100,000 devices: 7.2-7.3 s against 3.6-4.0 s; 1.6 s to build them after).
DEVICE_SEARCH_INDEXES = (
    GinIndex(fields=["search_name"], opclasses=["gin_trgm_ops"], name="device_name_trgm"),
    GinIndex(fields=["search_user"], opclasses=["gin_trgm_ops"], name="device_user_trgm"),
    *(
        models.Index(fields=[field], opclasses=["text_pattern_ops"], name=name)
        for field, name in (
            ("search_name", "device_name_upper_prefix"),
            ("search_user", "device_user_upper_prefix"),
            ("search_serial", "device_serial_upper_prefix"),
            ("search_id", "device_aad_id_upper_prefix"),
        )
    ),
)


# A device is registered while it has a registration and is not excluded: the one definition, used by
# DeviceQuerySet.registered() and Device.is_registered.
REGISTERED = Q(registered_at__isnull=False, excluded=False)


def _upper_of(field: str, max_length: int) -> models.GeneratedField:
    return models.GeneratedField(
        expression=Upper(field), output_field=models.CharField(max_length=max_length), db_persist=True
    )


def _tab_of_status() -> models.Case:
    """TAB_STATUSES as SQL: the tab a readiness status puts a device in."""
    return models.Case(
        *(
            models.When(readiness_status__in=statuses, then=models.Value(str(tab)))
            for tab, statuses in TAB_STATUSES.items()
        ),
        default=models.Value(""),
    )


def _rank_of_ring() -> models.Case:
    """The rings in their declared order (Test, First, Fast, Broad), no ring last."""
    return models.Case(
        *(models.When(ring=ring, then=models.Value(rank)) for rank, ring in enumerate(Ring.values)),
        default=models.Value(len(Ring.values)),
    )


# Every Device field the blade sorts by (devices.columns); each has an index led by the tab and ending with the
# id, so a page of any tab in any order is read from an index, even right after a discovery wrote every row.
SORTED_FIELDS = (
    "device_name",
    "serial_number",
    "ring_order",
    "readiness_status",
    "failed_checks",
    "last_intune_checkin",
    "azure_ad_device_id",
    "intune_device_id",
    "model",
    "manufacturer",
    "os_version",
    "edition",
    "architecture",
    "join_type",
    "management",
    "owner",
    "primary_user",
    "ring_assigned_by",
    "registered_at",
    "added_through",
    "report_generated_at",
)


class DeviceQuerySet(models.QuerySet):
    def registered(self) -> DeviceQuerySet:
        return self.filter(REGISTERED)

    def with_last_discovered(self) -> DeviceQuerySet:
        """Each device with `last_discovered_at`, its "Last discovered" time (devices.sightings)."""
        from .sightings import last_discovered

        return self.annotate(last_discovered_at=last_discovered())


class Device(models.Model):
    """A device discovered through the registration group, registered or not."""

    azure_ad_device_id = models.CharField("Azure AD device ID", max_length=64, unique=True)
    entra_object_id = models.CharField("Entra object ID", max_length=64, blank=True)
    intune_device_id = models.CharField("Intune device ID", max_length=64, blank=True)
    device_name = models.CharField("Device name", max_length=256, blank=True)
    serial_number = models.CharField("Serial number", max_length=128, blank=True)
    model = models.CharField(max_length=256, blank=True)
    manufacturer = models.CharField(max_length=256, blank=True)
    operating_system = models.CharField(max_length=128, blank=True)
    os_version = models.CharField("OS version", max_length=64, blank=True)
    edition = models.CharField(max_length=64, blank=True)
    architecture = models.CharField(max_length=32, blank=True)
    join_type = models.CharField(max_length=32, choices=JoinType.choices, blank=True)
    management = models.CharField(max_length=16, choices=Management.choices, default=Management.NONE)
    owner = models.CharField(max_length=32, choices=Owner.choices, blank=True)
    primary_user = models.CharField(max_length=256, blank=True)
    last_intune_checkin = models.DateTimeField("Last Intune check-in", null=True, blank=True)

    # No index of its own: (readiness_status, ring) and every (tab, column, id) serve it.
    readiness_status = models.CharField(max_length=32, choices=ReadinessStatus.choices)
    # Names of the failed prerequisite or readiness checks, joined by "; " (what the tab shows).
    failed_checks = models.TextField(blank=True)
    # Every check of the last evaluation, as stored (devices.checks.CheckResult.as_stored): a passed check with nothing
    # to say is its name; any other {"name", "passed"}, with "kind", "reason" and "remediation" where they are not a
    # prerequisite check's defaults. In full: check_details. No query filters or sorts on it, nor on the two
    # columns before an exclusion or the state version: ANALYZE skips the four (migration 0029; a first import's
    # ANALYZE of the table took 0.99 s with them, 0.77 s without, 0.2 s of it this column).
    checks = models.JSONField(default=list)
    report_generated_at = models.DateTimeField("Readiness report time", null=True, blank=True)

    registered_at = models.DateTimeField("Registered on", null=True, blank=True)
    ring = models.CharField(max_length=8, choices=Ring.choices, blank=True)
    ring_assigned_by = models.CharField(max_length=16, choices=RingAssignedBy.choices, blank=True)
    excluded = models.BooleanField(default=False)
    # The ring a device had when an admin excluded it (and who assigned it): restoring gives it back.
    ring_before_exclusion = models.CharField(max_length=8, choices=Ring.choices, blank=True)
    ring_assigned_by_before_exclusion = models.CharField(
        max_length=16, choices=RingAssignedBy.choices, blank=True
    )
    added_through = models.CharField(max_length=256, blank=True)  # "direct" or the nested group's name
    in_registration_group = models.BooleanField(default=True)
    first_discovered_at = models.DateTimeField(default=timezone.now)
    # Digest of everything the last evaluation read (devices.discovery.evaluation.input_key): unchanged inputs, no new evaluation.
    fingerprint = models.CharField(max_length=64, blank=True)
    # Bumped by every admin action on the device's state (ring, exclusion); discovery writes only rows whose
    # version is still the one it read, so an action taken while a run evaluates is never written over.
    state_version = models.PositiveIntegerField(default=0)

    # Written by the database from the fields above, never by the portal: the rule is declared once.
    tab = models.GeneratedField(
        expression=_tab_of_status(), output_field=models.CharField(max_length=16), db_persist=True
    )
    ring_order = models.GeneratedField(
        expression=_rank_of_ring(), output_field=models.PositiveSmallIntegerField(), db_persist=True
    )
    # What the search reads, folded to upper case once as the row is written rather than for every row a search
    # tests (devices.queries.search): a search that walks the name index tests each device five times faster.
    search_name = _upper_of("device_name", 256)
    search_user = _upper_of("primary_user", 256)
    search_serial = _upper_of("serial_number", 128)
    search_id = _upper_of("azure_ad_device_id", 64)

    objects = DeviceQuerySet.as_manager()

    class Meta:
        # The capabilities of the seed's role table; accounts.roles maps roles onto them.
        permissions = [
            ("discover_devices", "Discover devices"),
            ("modify_columns", "Modify columns"),
            ("refresh_device_list", "Refresh device list"),
            ("export_devices", "Export to .CSV"),
            ("device_actions", "Device actions"),
        ]
        indexes = [
            models.Index(fields=["serial_number"]),
            models.Index(fields=["registered_at"]),
            # The blade: tab counts and the summary chart in one index-only GROUP BY.
            models.Index(fields=["readiness_status", "ring"], name="device_status_ring"),
            # The registration group page: the registered devices that went quiet most recently, whose new records
            # may be their replacements (devices.lifecycle). Without it, 60-80 ms at 100,000 devices a view.
            models.Index(
                fields=["-last_intune_checkin"], condition=REGISTERED, name="device_registered_checkin"
            ),
            # A page of a tab in any sort order, read from an index instead of sorting the tab. The default
            # order's index also carries what searches and filters read: their page's keys come from the index
            # alone, without a heap page per device passed over (devices.views.blade.page_rows).
            *(
                models.Index(
                    fields=["tab", field, "id"],
                    name=f"device_tab_{field}",
                    include=SEARCHED_AND_FILTERED if field == COVERING_ORDER else (),
                )
                for field in SORTED_FIELDS
            ),
            # The default order again, carrying only what a search reads: a search without filters walks it
            # (the planner takes the narrower index), and a search passes thousands of names before its first
            # match ("HR-LT": 23,550 at 100,000 devices). An index-only scan unpacks every column of each entry
            # it passes: 13 columns took 17-18 ms for that walk, these 7 took 12-14 ms (bench/README.md).
            models.Index(
                fields=["tab", COVERING_ORDER, "id"],
                name="device_tab_name_search",
                include=SEARCHED,
            ),
        ]

    def __str__(self) -> str:
        return self.device_name or self.azure_ad_device_id

    @property
    def is_registered(self) -> bool:
        """REGISTERED, for a device in hand."""
        return self.registered_at is not None and not self.excluded

    @property
    def check_details(self) -> list[dict[str, Any]]:
        """Every check in full: name, kind, passed, reason and remediation (what the fly-in and the API show)."""
        return expanded(self.checks or [])


class DeviceSighting(models.Model):
    """When discovery last found a device in the registration group (never, for a device registered otherwise).

    A narrow table of its own, apart from the wide device row. A device the last run found holds a stand-in for
    that run's time (devices.sightings: an hourly run writes only the devices that came or left, and readers
    read `Device.objects.with_last_discovered()`). Every device has its row: the database adds it when the
    device is inserted, whoever inserts it (a trigger, migration 0012), so a list sorted by this time joins it
    without losing a device and reads it in the order of its index."""

    device = models.OneToOneField(Device, primary_key=True, on_delete=models.CASCADE, related_name="sighting")
    last_discovered_at = models.DateTimeField("Last discovered", null=True)

    class Meta:
        indexes = [models.Index(fields=["last_discovered_at", "device"], name="sighting_time_device")]

    def __str__(self) -> str:
        return f"{self.device_id} seen {self.last_discovered_at}"


class DeviceStatusChange(models.Model):
    """One entry of a device's history: a change of its readiness status or of its ring, or an event of its
    lifecycle (a re-enrollment) that left both as they were, with its time and cause."""

    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="status_changes")
    from_status = models.CharField(max_length=32, choices=ReadinessStatus.choices, blank=True)
    to_status = models.CharField(max_length=32, choices=ReadinessStatus.choices)
    from_ring = models.CharField(max_length=8, choices=Ring.choices, blank=True)
    to_ring = models.CharField(max_length=8, choices=Ring.choices, blank=True)
    changed_at = models.DateTimeField(default=timezone.now)
    cause = models.TextField()
    run = models.ForeignKey("DiscoveryRun", null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ["-changed_at", "-id"]

    def __str__(self) -> str:
        return f"{self.from_status or 'new'} -> {self.to_status}"

    @property
    def status_changed(self) -> bool:
        return self.from_status != self.to_status

    @property
    def ring_changed(self) -> bool:
        return self.from_ring != self.to_ring


class ReadinessReport(models.Model):
    """The latest device-side readiness report of a device, kept even before it is registered."""

    azure_ad_device_id = models.CharField(max_length=64, unique=True)
    generated_at = models.DateTimeField()
    checks = models.JSONField(default=list)  # [{"name", "result": "passed"|"failed", "detail"}]
    received_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"Readiness report of {self.azure_ad_device_id} at {self.generated_at}"


class DiscoveryRunQuerySet(models.QuerySet):
    @staticmethod
    def in_progress_condition() -> Q:
        """Runs under way: the holder of a live lease, or a run queued within a lease's time and waiting for a
        worker. A run whose worker died keeps its "running" status until the next run takes the lease over,
        but it is not in progress: its lease has lapsed."""
        now = timezone.now()
        held = DiscoveryLease.objects.filter(holder=OuterRef("pk"), expires_at__gte=now)
        waiting_since = now - timedelta(seconds=settings.AUTOPATCH_DISCOVERY_LEASE_SECONDS)
        return Q(Exists(held)) | Q(status=DiscoveryRun.Status.QUEUED, queued_at__gte=waiting_since)

    def in_progress(self) -> DiscoveryRunQuerySet:
        return self.filter(self.in_progress_condition())

    def with_progress(self) -> DiscoveryRunQuerySet:
        """Each run with whether it is in progress, read in the same statement as its status: a run that ends
        between two reads cannot show as "running" and over at once (a status panel would stop following it)."""
        return self.annotate(
            in_progress_now=Case(
                When(self.in_progress_condition(), then=Value(True)),
                default=Value(False),
                output_field=BooleanField(),
            )
        )

    def ran(self) -> DiscoveryRunQuerySet:
        """Runs that read the tenant themselves: not those another run covered (or, before covering, skipped)."""
        return self.exclude(status__in=(DiscoveryRun.Status.SKIPPED, DiscoveryRun.Status.COVERED))


class DiscoveryRun(models.Model):
    """One discovery of the registration group: who or what started it, and how it ended."""

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule", "Hourly schedule"
        MANUAL = "manual", "Discover devices"
        API = "api", "API"
        COMMAND = "command", "Command line"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        PARTIAL = "partial", "Partly failed"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"
        COVERED = "covered", "Covered by another run"

    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    requested_by = models.CharField(max_length=256, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    queued_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    progress = models.CharField(max_length=256, blank=True)
    counts = models.JSONField(default=dict)  # per readiness status, plus candidates/registered/changed
    errors = models.JSONField(default=list)  # [{"stage", "message"}]
    ignored = models.JSONField(default=list)  # members not discovered: [{"id", "name", "type", "reason"}]
    graph_requests = models.PositiveIntegerField(default=0)
    # The run that did this one's work: it took the lease while this one waited, or held it when this one came.
    covered_by = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # When the run recorded which devices it found in the group: the time devices.sightings.SEEN_BY_LAST_RUN stands
    # for, while this run is the last to have recorded them.
    sightings_at = models.DateTimeField(null=True, blank=True)

    objects = DiscoveryRunQuerySet.as_manager()

    class Meta:
        ordering = ["-queued_at", "-id"]
        indexes = [models.Index(fields=["-sightings_at"], name="run_sightings_at")]

    def __str__(self) -> str:
        return f"Discovery run #{self.pk} ({self.trigger}, {self.status})"

    @property
    def is_active(self) -> bool:
        """In progress, as the lease says (see DiscoveryRunQuerySet.in_progress); a run read through
        `with_progress()` answers from the same read as its status."""
        if hasattr(self, "in_progress_now"):
            return self.in_progress_now
        return self.pk is not None and DiscoveryRun.objects.in_progress().filter(pk=self.pk).exists()

    def reread(self) -> DiscoveryRun:
        """This run as it is now, with its progress (see `with_progress`)."""
        return DiscoveryRun.objects.with_progress().get(pk=self.pk)


class DiscoveryLease(models.Model):
    """A single row that makes discovery runs exclusive; it lapses if its holder dies."""

    name = models.CharField(max_length=32, unique=True)
    holder = models.ForeignKey(DiscoveryRun, null=True, blank=True, on_delete=models.SET_NULL)
    expires_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} lease held by run {self.holder_id}"


class ObjectKind(models.TextChoices):
    """What a row read from Graph holds."""

    MEMBER = "member"  # a direct member of the registration group or of a group nested in it
    GROUP = "group"  # the registration group and the groups nested in it
    DEVICE = "device"  # an Entra device record
    MANAGED = "managed"  # an Intune managed device
    CANDIDATE = (
        "candidate"  # a device this run evaluates as a member of the registration group (staging only)
    )


# Managed devices in the tenant copy whose list answer left blanks that no single GET has filled yet: every run
# looks them up again. A partial index finds them: the scan of every managed device's JSON took 0.2 s an hour.
WITH_BLANKS = Q(kind=ObjectKind.MANAGED, data__contains=f'"{BLANKS}"')
# Azure AD registered device records (trustType Workplace, a small share of the devices): the dual state report
# pairs them by name with hybrid joined ones. A partial index finds them without reading every record's JSON.
AZURE_AD_REGISTERED_TRUST = "Workplace"
AZURE_AD_REGISTERED = Q(kind=ObjectKind.DEVICE, data__contains=f'"trustType":"{AZURE_AD_REGISTERED_TRUST}"')


class TenantObjectQuerySet(models.QuerySet):
    """The registration group's members that discovery cannot register, by rule (discovery lists them on its run,
    the group page in its health checks)."""

    def members(self) -> TenantObjectQuerySet:
        return self.filter(kind=ObjectKind.MEMBER)

    def without_device_id(self) -> TenantObjectQuerySet:
        """Device members without an Entra device record that carries an Azure AD device ID."""
        with_id = TenantObject.objects.filter(kind=ObjectKind.DEVICE, group_id="").exclude(device_id="")
        return self.members().filter(extra=DEVICE_TYPE).exclude(object_id__in=with_id.values("object_id"))

    def nested_too_deep(self, registration_group_id: str) -> TenantObjectQuerySet:
        """Groups in a nested group: Autopatch supports one level of nesting."""
        return self.members().filter(extra=GROUP_TYPE).exclude(group_id=registration_group_id)

    def not_devices(self) -> TenantObjectQuerySet:
        """Users and other objects: only devices are registered."""
        return self.members().exclude(extra__in=(DEVICE_TYPE, GROUP_TYPE))


class TenantObject(models.Model):
    """The portal's copy of what Graph reported, kept between runs so that delta reads can bring it up to date.

    A run changes it only once every read it started has completed (see devices.discovery.reading)."""

    kind = models.CharField(max_length=9, choices=ObjectKind.choices)
    group_id = models.CharField(max_length=64, blank=True)  # members: the group they are a member of
    object_id = models.CharField(
        max_length=64
    )  # Entra object id (members, groups, devices), Intune id (managed)
    device_id = models.CharField(max_length=64, blank=True)  # Entra deviceId (devices, managed)
    display_name = models.CharField(max_length=256, blank=True)
    serial_number = models.CharField(max_length=128, blank=True)
    # members: the member's @odata.type; managed devices: lastSyncDateTime
    extra = models.CharField(max_length=256, blank=True)
    data = models.TextField(blank=True)  # the Graph object, as JSON (devices and managed devices)
    changed_at = models.DateTimeField(default=timezone.now)

    objects = TenantObjectQuerySet.as_manager()

    class Meta:
        constraints = [
            # It carries the device ID: an hourly run stages its candidates (members joined to their device
            # records) from this index alone, not from the records' rows with their JSON.
            models.UniqueConstraint(
                fields=["kind", "group_id", "object_id"],
                include=["device_id"],
                name="one_tenant_object_per_key",
            ),
        ]
        indexes = [
            models.Index(fields=["kind", "device_id"], name="tenant_object_device"),
            models.Index(fields=["kind", "display_name"], name="tenant_object_name"),
            models.Index(fields=["id"], condition=WITH_BLANKS, name="tenant_managed_with_blanks"),
            # The registration group page reads members by type (devices per group, nested groups, users) and
            # their IDs: from this index alone, where each of those read every member's row (50 ms each at
            # 100,000 devices).
            models.Index(
                fields=["extra", "group_id"],
                include=["object_id", "display_name"],
                condition=Q(kind=ObjectKind.MEMBER),
                name="tenant_member_by_type",
            ),
            models.Index(
                fields=["display_name"], condition=AZURE_AD_REGISTERED, name="tenant_azure_ad_registered"
            ),
            # Possible replacements: managed devices that share a quiet device's serial number (devices.lifecycle;
            # without it, a pass over every managed device, 45-55 ms at 100,000 devices a view).
            models.Index(
                fields=["serial_number"], condition=Q(kind=ObjectKind.MANAGED), name="tenant_managed_serial"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.object_id}"


class DeltaLink(models.Model):
    """Where the next read of a Graph collection starts: its @odata.deltaLink, or the time of the last read."""

    name = models.CharField(max_length=128, unique=True)  # "devices", "group:<id>", "managed"
    link = models.TextField(blank=True)
    read_at = models.DateTimeField(null=True, blank=True)  # when the last complete read started
    full_read_at = models.DateTimeField(null=True, blank=True)  # when the last full read started

    def __str__(self) -> str:
        return f"{self.name} read {self.read_at}"


class StagedObject(models.Model):
    """What one discovery run read from Graph, held in the database until every read has completed."""

    Kind = ObjectKind

    # No foreign key in the database and no index of its own (the indexes below lead with it): a run stages up to
    # 300,000 rows, and the key's check of each at commit took a fifth of staging an hourly run's candidates.
    # The table is UNLOGGED on PostgreSQL (migration 0020): staged rows only ever serve the run that wrote them.
    run = models.ForeignKey(DiscoveryRun, on_delete=models.CASCADE, db_constraint=False, db_index=False)
    kind = models.CharField(max_length=9, choices=ObjectKind.choices)
    group_id = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    device_id = models.CharField(max_length=64, blank=True)
    display_name = models.CharField(max_length=256, blank=True)
    serial_number = models.CharField(max_length=128, blank=True)
    # members: @odata.type; managed devices: lastSyncDateTime; candidates: "direct" or the nested group's name
    extra = models.CharField(max_length=256, blank=True)
    data = models.TextField(blank=True)  # the Graph object, as JSON
    removed = models.BooleanField(default=False)  # a delta read's @removed

    class Meta:
        # Staged rows are read by run and kind, in bulk (joins, not look-ups): by object ID when applied to the
        # copy. Indexes by device ID and name cost more to fill (half of staging 97,000 candidates) than they saved.
        # Candidates are read through their constraint's index, and kept out of this one: filled with them too,
        # staging a first run's 96,942 candidates took 1.16 s in psql, 0.77 s without (bench/README.md).
        indexes = [
            models.Index(
                fields=["run", "kind", "object_id"],
                condition=~models.Q(kind="candidate"),
                name="staged_by_object",
            )
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["run", "kind", "object_id"],
                condition=models.Q(kind="candidate"),
                name="one_staged_candidate_per_object",
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.object_id or self.device_id}"


class ColumnChoice(models.Model):
    """The columns one user chose for one tab of the device blade, in their order."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="device_column_choices"
    )
    tab = models.CharField(max_length=16, choices=Tab.choices)
    columns = models.JSONField(default=list)  # column keys from devices.columns, in display order
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "tab"], name="one_column_choice_per_user_tab")]

    def __str__(self) -> str:
        return f"{self.user_id} {self.tab}: {', '.join(self.columns)}"


class ReadinessScript(models.Model):
    """The readiness script the portal deployed to Intune Remediations: one row, written by deployments only."""

    # One row: two deployments at once both create a script in Intune, and the one whose row loses removes its own.
    key = models.CharField(max_length=16, unique=True, default="readiness", editable=False)
    intune_id = models.CharField(max_length=64)  # the deviceHealthScript's ID in Intune
    version = models.CharField(max_length=64)  # the shipped script's version deployed last
    group_id = models.CharField(max_length=64)  # the registration group it is assigned to
    deployed_at = models.DateTimeField()  # first created in Intune
    deployed_by = models.CharField(max_length=150)
    updated_at = models.DateTimeField(null=True, blank=True)  # last given a new version
    updated_by = models.CharField(max_length=150, blank=True)

    def __str__(self) -> str:
        return f"Readiness script {self.intune_id} version {self.version}"


class GroupAddition(models.Model):
    """Devices being added to the registration group by the worker: a bulk-add file longer than one web request
    can carry (10,000 rows are about 500 `$batch` calls). Its page follows it; its rows' answers are kept."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Waiting for the worker"
        RUNNING = "running", "Adding"
        DONE = "done", "Done"
        FAILED = "failed", "Nothing was added"

    requested_by = models.CharField(max_length=150)
    source = models.CharField(max_length=300)  # "file NAME" or "picked on the page", as the audit log says
    source_ip = models.GenericIPAddressField(null=True, blank=True)
    rows = models.JSONField(default=list)  # [line, given] per row, as parsed
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    done = models.PositiveIntegerField(default=0)  # devices sent to Graph so far
    # devices to send (rows less those not found or repeated)
    to_send = models.PositiveIntegerField(default=0)
    results = models.JSONField(default=list)  # [line, given, name, outcome, detail] per row, once done
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)  # claimed, or last progress: a live worker's sign
    finished_at = models.DateTimeField(null=True, blank=True)

    # A worker writes its progress every SEND_CHUNK devices (ten $batch calls, seconds): one silent this long died,
    # and the addition may be taken over (adding is idempotent: a device added before answers Already a member).
    STALE_AFTER = timedelta(minutes=15)

    def __str__(self) -> str:
        return f"Group addition #{self.pk} ({len(self.rows)} rows, {self.status})"

    @classmethod
    def claimable(cls) -> Q:
        """Additions a worker may take: queued, or left running by a worker that went silent."""
        return Q(status=cls.Status.QUEUED) | Q(
            status=cls.Status.RUNNING, updated_at__lt=timezone.now() - cls.STALE_AFTER
        )

    @property
    def stalled(self) -> bool:
        return self.status == self.Status.RUNNING and timezone.now() - self.updated_at > self.STALE_AFTER

    @property
    def in_progress(self) -> bool:
        return self.status in (self.Status.QUEUED, self.Status.RUNNING) and not self.stalled
