"""The registration group page (members, nested groups, owners, health, replacements), adding devices to the group,
becoming an owner, and the dual state report. Domain work lives in devices.registration_group, devices.dual_state."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from accounts.access import administrator_required, capability_required, has_capability
from accounts.audit import client_ip, record_event
from accounts.models import AuditEvent, EntraIdentity
from accounts.roles import Capability, Role, role_of
from autopatch_portal.csvfile import csv_download
from autopatch_portal.paging import requested_page
from autopatch_portal.tenant.connection import connect
from autopatch_portal.tenant.graph import GraphError
from devices import group_members as gm
from devices import registration_group as rg
from devices.dual_state import dual_state_csv, dual_state_page
from devices.models import GroupAddition

from .common import ENTRA_GROUP_URL, bad_request


def identity_of(user) -> EntraIdentity | None:
    return EntraIdentity.objects.filter(user=user).first()


def audited(request: HttpRequest, action: str, result: str, **details) -> None:
    """Record a change an admin made (or tried to make) to the registration group."""
    record_event(
        request.user, action, target="registration group", result=result[:500], request=request, **details
    )


def page(request: HttpRequest, status: int = 200, **extra) -> HttpResponse:
    """The group page, with what a POST adds (its results or its error)."""
    search = request.GET.get("pick", "").strip()[:100]
    if "\x00" in search:  # PostgreSQL refuses NUL in text; no device name holds one
        return bad_request(request, "The search for devices to pick contains a NUL character.")
    try:
        tenant = connect()
    except GraphError:
        tenant = None
    group = rg.overview(tenant, search)
    identity = identity_of(request.user)
    context = {
        "group": group,
        "entra_url": ENTRA_GROUP_URL.format(group.group_id) if group.group_id else "",
        "can_add": has_capability(request.user, Capability.DEVICE_ACTIONS),
        "is_admin": role_of(request.user) == Role.ADMINISTRATOR,
        "identity": identity,
        "is_owner": bool(identity and group.is_owner(identity.object_id)),
        "max_rows": gm.MAX_ROWS,
        "inline_rows": gm.INLINE_ROWS,
        **addition_context(addition_of(request.GET.get("addition", ""))),
        "pick": search,
        "template_heading": gm.TEMPLATE_HEADING,
        **extra,
    }
    return render(request, "devices/registration_group.html", context, status=status)


def addition_of(value: str) -> GroupAddition | None:
    """The addition a URL names (?addition=pk); a malformed or unknown one names none."""
    if not value.isdecimal() or len(value) > 18:
        return None
    return GroupAddition.objects.filter(pk=int(value)).first()


def addition_context(addition: GroupAddition | None) -> dict:
    if addition is None:
        return {}
    done = addition.status == GroupAddition.Status.DONE
    return {
        "addition": addition,
        "addition_result": gm.AddResult.from_rows(addition.results) if done else None,
    }


@never_cache
@require_GET
@capability_required(Capability.REFRESH_DEVICE_LIST)
def registration_group(request: HttpRequest) -> HttpResponse:
    return page(request)


@never_cache
@require_GET
@capability_required(Capability.REFRESH_DEVICE_LIST)
def group_addition(request: HttpRequest, pk: str) -> HttpResponse:
    """An addition the worker carries out, as its page follows it (every 2 s until it ends)."""
    addition = addition_of(pk)
    if addition is None:
        raise Http404("No such addition.")
    return render(request, "devices/_group_addition.html", addition_context(addition))


@never_cache
@require_GET
@capability_required(Capability.EXPORT_DEVICES)
def group_addition_results(request: HttpRequest, pk: str) -> HttpResponse:
    """Every row's answer of an addition that ended, as CSV (its page lists only the rows to look at)."""
    addition = addition_of(pk)
    if addition is None or addition.status != GroupAddition.Status.DONE:
        raise Http404("No such addition, or it has not ended.")
    record_event(
        request.user,
        AuditEvent.Action.EXPORT,
        target=f"Registration group addition {addition.pk}",
        result=f"{len(addition.results)} rows",
        request=request,
    )
    return csv_download(gm.AddResult.from_rows(addition.results).csv_lines(), f"group-addition-{addition.pk}")


@never_cache
@require_POST
@capability_required(Capability.DEVICE_ACTIONS)
def add_devices(request: HttpRequest) -> HttpResponse:
    """Add the devices picked on the page, or those of an uploaded bulk-add file: all or nothing on a bad file."""
    upload = request.FILES.get("file")
    try:
        if upload is not None:
            rows = gm.parse_upload(upload.read(gm.MAX_UPLOAD_BYTES + 1))
            source = f"file {upload.name}"
        else:
            rows = gm.parse_picked(request.POST.getlist("ids"))
            source = "picked on the page"
    except gm.UploadError as exc:
        return page(request, status=400, add_error=str(exc))
    if len(rows) > gm.INLINE_ROWS:
        # Too long for one request against a real tenant: the worker adds them, and the page follows it.
        addition = gm.queue_addition(rows, source, request.user.get_username(), client_ip(request))
        audited(
            request,
            AuditEvent.Action.GROUP_MEMBERS,
            f"queued: {len(rows)} rows",
            source=source,
            addition=addition.pk,
        )
        return redirect(f"{reverse('devices:registration_group')}?addition={addition.pk}#add-title")
    try:
        result = gm.add_devices(connect(), rows)
    except GraphError as exc:
        audited(request, AuditEvent.Action.GROUP_MEMBERS, f"failed: {exc}", source=source)
        return page(request, status=502, add_error=f"Nothing was added. {exc}")
    audited(
        request,
        AuditEvent.Action.GROUP_MEMBERS,
        result.summary(),
        source=source,
        added=result.added_ids[:1000],
        rows=len(rows),
    )
    return page(request, add_result=result)


@never_cache
@require_POST
@administrator_required
def become_owner(request: HttpRequest) -> HttpResponse:
    """The seed's tip: a Service Administrator makes their Entra user an owner of the registration group."""
    identity = identity_of(request.user)
    if identity is None:
        return page(
            request,
            status=400,
            owner_error="Your account is a local account of the portal: it has no Entra ID user to make owner.",
        )
    try:
        added = rg.add_owner(connect(), identity.object_id)
    except GraphError as exc:
        audited(request, AuditEvent.Action.GROUP_OWNER, f"failed: {exc}")
        return page(request, status=502, owner_error=f"Microsoft Graph refused: {exc}")
    result = "became owner" if added else "already an owner"
    audited(request, AuditEvent.Action.GROUP_OWNER, result, object_id=identity.object_id)
    messages.success(
        request,
        "You are now an owner of the registration group."
        if added
        else "You were already an owner of the registration group.",
    )
    return redirect("devices:registration_group")


@never_cache
@require_GET
@capability_required(Capability.REFRESH_DEVICE_LIST)
def dual_state(request: HttpRequest) -> HttpResponse:
    number = requested_page(request.GET.get("page"))
    if number is None:
        return bad_request(request, "There is no such page of the dual state report.")
    page, devices = dual_state_page(number)
    return render(request, "devices/dual_state.html", {"page": page, "devices": devices})


@never_cache
@require_GET
@capability_required(Capability.EXPORT_DEVICES)
def dual_state_export(request: HttpRequest) -> HttpResponse:
    record_event(request.user, AuditEvent.Action.EXPORT, target="Dual state", request=request)
    return csv_download(dual_state_csv(), "dual-state")
