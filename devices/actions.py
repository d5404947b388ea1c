"""Device actions of the blade: Assign ring, Exclude device, Restore excluded device, each per device with its outcome."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts.audit import record_event
from accounts.models import AuditEvent

from .models import Device, DeviceStatusChange, DiscoveryRun, ReadinessStatus, Ring, RingAssignedBy
from .runs import start_discovery

MAX_DEVICES = 1000  # per action: the page size's maximum times four, and a bound on one request's work


class ActionError(ValueError):
    """An action request that names no action, ring or known device: refused as a whole, nothing changed."""


@dataclass(frozen=True)
class Outcome:
    device: Device
    done: bool
    message: str


@dataclass(frozen=True)
class Action:
    key: str
    title: str
    verb: str  # what the confirmation button says
    explanation: str
    statuses: tuple[str, ...]  # the readiness statuses of devices it can act on: offered only where they show


ACTIONS: dict[str, Action] = {
    a.key: a
    for a in (
        Action(
            "assign_ring",
            "Assign ring",
            "Assign ring",
            "The selected devices move to the chosen deployment ring; \u201cRing assigned by\u201d becomes Admin. "
            "Only registered devices whose readiness status is Active can be assigned.",
            (ReadinessStatus.ACTIVE,),
        ),
        Action(
            "exclude",
            "Exclude device",
            "Exclude",
            "The selected devices are deregistered from Windows Autopatch (their Entra ID and Intune records "
            "stay) and show as Excluded under Not registered; discovery does not register them again.",
            (ReadinessStatus.ACTIVE, ReadinessStatus.READINESS_FAILED, ReadinessStatus.INACTIVE),
        ),
        Action(
            "restore",
            "Restore excluded device",
            "Restore",
            "The selected excluded devices are evaluated again at once: a discovery run starts, and a device "
            "that passes the prerequisite checks is registered again.",
            (ReadinessStatus.EXCLUDED,),
        ),
    )
}


def selected_devices(ids: list[str]) -> list[Device]:
    """The devices with these primary keys, in the order given; a malformed or unknown ID refuses the request."""
    if not ids:
        raise ActionError("Select one or more devices first.")
    if len(ids) > MAX_DEVICES:
        raise ActionError(f"Select at most {MAX_DEVICES} devices at a time.")
    try:
        pks = list(dict.fromkeys(int(i) for i in ids))
        if not all(0 < pk < 2**63 for pk in pks):  # beyond a database integer (SQLite raises OverflowError)
            raise ValueError
    except ValueError as exc:
        raise ActionError("A selected device ID is not valid.") from exc
    found = Device.objects.in_bulk(pks)
    unknown = [pk for pk in pks if pk not in found]
    if unknown:
        raise ActionError(
            f"{len(unknown)} selected device(s) do not exist (IDs {', '.join(map(str, unknown[:10]))})."
        )
    return [found[pk] for pk in pks]


def locked(devices: list[Device]) -> list[Device]:
    """The devices as they are now, locked until the action's transaction ends.

    An action decides from this read and bumps `state_version`, so a discovery run that read the devices
    before writes none of them over (its write is conditional on the version). Locks are taken in key order,
    as discovery writes, so the two never deadlock; NO KEY leaves foreign-key checks (history rows) free."""
    fresh = (
        Device.objects.select_for_update(no_key=True).defer("checks").filter(pk__in=[d.pk for d in devices])
    )
    by_pk = {d.pk: d for d in fresh.order_by("pk")}
    return [by_pk[d.pk] for d in devices if d.pk in by_pk]


# What every action sets on the devices it changes: the state is no longer the one a run may have read.
BUMP = {"state_version": F("state_version") + 1}


def entry(device: Device, to_status: str, to_ring: str, now, cause: str) -> DeviceStatusChange:
    """A history entry of an action: the device's status and ring before, and after."""
    return DeviceStatusChange(
        device=device,
        from_status=device.readiness_status,
        to_status=to_status,
        from_ring=device.ring,
        to_ring=to_ring,
        changed_at=now,
        cause=cause,
    )


@transaction.atomic
def assign_ring(devices: list[Device], ring: str, actor: str = "an admin") -> list[Outcome]:
    if ring not in Ring.values:
        raise ActionError(f"{ring!r} is not a ring: choose Test, First, Fast or Broad.")
    label = Ring(ring).label
    now = timezone.now()
    outcomes, changed, history = [], [], []
    for device in locked(devices):
        if device.readiness_status != ReadinessStatus.ACTIVE or not device.is_registered:
            status = device.get_readiness_status_display()
            outcomes.append(
                Outcome(
                    device, False, f"Not assigned: only registered, Active devices can be (it is {status})."
                )
            )
        elif device.ring == ring and device.ring_assigned_by == RingAssignedBy.ADMIN:
            outcomes.append(Outcome(device, True, f"Already in {label}, assigned by an admin."))
        else:
            before = device.get_ring_display() or "no ring"
            changed.append(device.pk)
            outcomes.append(Outcome(device, True, f"Moved from {before} to {label}."))
            history.append(
                entry(
                    device,
                    device.readiness_status,
                    ring,
                    now,
                    f"Ring assigned by {actor}: {before} to {label}",
                )
            )
    Device.objects.filter(pk__in=changed).update(ring=ring, ring_assigned_by=RingAssignedBy.ADMIN, **BUMP)
    DeviceStatusChange.objects.bulk_create(history)
    return outcomes


@transaction.atomic
def exclude(devices: list[Device], actor: str) -> list[Outcome]:
    now = timezone.now()
    outcomes, changed, history = [], [], []
    for device in locked(devices):
        if device.excluded:
            outcomes.append(Outcome(device, True, "Already excluded."))
        elif device.readiness_status == ReadinessStatus.PREREQUISITES_FAILED:
            outcomes.append(
                Outcome(device, False, "Not excluded: it is not registered (Pre-requisites failed).")
            )
        else:
            changed.append(device.pk)
            kept = f" (ring {device.get_ring_display()} kept for a restore)" if device.ring else ""
            history.append(entry(device, ReadinessStatus.EXCLUDED, "", now, f"Excluded by {actor}{kept}"))
            outcomes.append(Outcome(device, True, "Excluded: deregistered, now under Not registered."))
    # Deregistering deletes the Autopatch record (registration, ring) and keeps the flag discovery honours; the
    # ring is kept aside, so that a restore gives it back (an admin's Test stays Test).
    Device.objects.filter(pk__in=changed).update(
        ring_before_exclusion=F("ring"),
        ring_assigned_by_before_exclusion=F("ring_assigned_by"),
        excluded=True,
        readiness_status=ReadinessStatus.EXCLUDED,
        registered_at=None,
        ring="",
        ring_assigned_by="",
        failed_checks="",
        fingerprint="",
        **BUMP,
    )
    DeviceStatusChange.objects.bulk_create(history)
    return outcomes


@transaction.atomic
def restore(devices: list[Device], actor: str) -> tuple[list[Outcome], DiscoveryRun | None, bool]:
    """Clear the Excluded flag and start a discovery run, which evaluates the devices with the real checks; one
    that passes them is registered again in the ring it had when it was excluded (devices.discovery.status)."""
    outcomes, changed = [], []
    devices = locked(devices)
    for device in devices:
        if not device.excluded:
            outcomes.append(Outcome(device, False, "Not restored: it is not excluded."))
        else:
            changed.append(device.pk)
    if not changed:
        return outcomes, None, False
    # The status stays Excluded until the run's evaluation writes the device's new one; an empty
    # fingerprint makes the run write it even if nothing else about the device changed.
    Device.objects.filter(pk__in=changed).update(excluded=False, fingerprint="", **BUMP)
    run, started = start_discovery(DiscoveryRun.Trigger.MANUAL, requested_by=actor)
    message = (
        f"Restored: discovery run #{run.pk} evaluates it now."
        if started
        else f"Restored: discovery run #{run.pk}, already under way, or the next run evaluates it."
    )
    by_pk = {d.pk: d for d in devices}
    outcomes.extend(Outcome(by_pk[pk], True, message) for pk in changed)
    order = {d.pk: i for i, d in enumerate(devices)}
    outcomes.sort(key=lambda o: order[o.device.pk])
    return outcomes, run, started


def record_action(
    actor, action: str, ring: str, devices: list[Device], outcomes: list[Outcome], run, request=None
) -> None:
    """The audit log's entry for an action, from the blade or the API: it names devices as admins know them
    (searchable by name); the IDs and each device's outcome stay in the details."""
    done = sum(1 for o in outcomes if o.done)
    ring_label = f" ({Ring(ring).label})" if ring in Ring.values else ""
    record_event(
        actor,
        AuditEvent.Action.DEVICE_ACTION,
        target=", ".join(str(d) for d in devices),
        result=f"{ACTIONS[action].title}{ring_label}: {done} of {len(outcomes)} done",
        request=request,
        action=action,
        ring=ring or None,
        run=run.pk if run else None,
        outcomes=[
            {
                "device": str(o.device),
                "azure_ad_device_id": o.device.azure_ad_device_id,
                "done": o.done,
                "message": o.message,
            }
            for o in outcomes
        ],
    )


def perform(
    user, action: str, devices: list[Device], ring: str, request=None
) -> tuple[list[Outcome], DiscoveryRun | None]:
    """Apply an action and record it in the audit log, in one transaction: an action is in the log exactly when it
    took effect. (Recorded after it, an entry that could not be written, with SQLite's database busy under load,
    left devices changed that the log never named, and the admin an error.)"""
    with transaction.atomic():
        outcomes, run = apply(action, devices, ring, user.get_username())
        record_action(user, action, ring, devices, outcomes, run, request)
    return outcomes, run


def apply(
    action: str, devices: list[Device], ring: str, actor: str
) -> tuple[list[Outcome], DiscoveryRun | None]:
    """Carry out one of ACTIONS on the devices (ActionError for a ring that is none)."""
    if action == "assign_ring":
        return assign_ring(devices, ring, actor), None
    if action == "exclude":
        return exclude(devices, actor), None
    outcomes, run, _ = restore(devices, actor)
    return outcomes, run
