"""The device REST API (/api/v1/): thin views over the same functions as the blade's pages.

The list is devices.queries.device_list (the tabs' and the export's query), actions are devices.actions,
discovery is devices.runs.start_discovery (the button's and the schedule's task), readiness reports go through
devices.readiness, registrations through devices.registrations. Every change is in the audit log.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.core import signing
from django.db import transaction
from django.db.models import Prefetch
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api.errors import ErrorSerializer
from accounts.api.permissions import requires
from accounts.audit import record_event
from accounts.models import AuditEvent
from accounts.roles import REPORT_READINESS, Capability
from devices import actions, registrations
from devices.columns import COLUMNS
from devices.models import Device, DeviceStatusChange, DiscoveryRun, ReadinessReport, Tab
from devices.queries import (
    FILTER_PARAMS,
    TAB_ALL,
    InvalidQuery,
    device_list,
    filters_for,
    paging,
    with_columns,
)
from devices.readiness import ingest_and_apply
from devices.runs import request_discovery

from . import serializers as s

HISTORY = 50  # status changes a device's answer lists, newest first
CURSOR_SALT = "devices.api.cursor"


def errors(*codes: int) -> dict[int, OpenApiResponse]:
    """Error answers for the OpenAPI document: every one has the same JSON body."""
    descriptions = {
        400: "The request is not valid; `detail` says why.",
        401: "No valid API key or access token.",
        403: "The key's scope or the caller's role does not allow this.",
        404: "No such object.",
        413: "The request body is too large.",
        415: "The body is not JSON (Content-Type: application/json).",
    }
    return {
        code: OpenApiResponse(ErrorSerializer, description=descriptions[code]) for code in (401, 403, *codes)
    }


def choices(param: str) -> list[str]:
    return [value for value, _ in next(f for f in filters_for(TAB_ALL) if f.param == param).choices]


SORTS = [c.key for c in COLUMNS if c.sortable]
LIST_PARAMETERS = [
    OpenApiParameter("tab", str, enum=[*Tab.values, TAB_ALL], description="The blade's tab (default all)."),
    OpenApiParameter(
        "q", str, description="Device name or user (any part), Azure AD device ID or serial number (start)."
    ),
    *(OpenApiParameter(param, str, enum=choices(param)) for param in FILTER_PARAMS),
    OpenApiParameter(
        "sort", str, enum=[*SORTS, *(f"-{key}" for key in SORTS)], description="Column key; - for descending."
    ),
    OpenApiParameter("per_page", int, description="Devices per page, 1 to 250 (default 50)."),
    OpenApiParameter("cursor", str, description="`next_cursor` of the previous page."),
]


def query_digest(tab: str, params: dict[str, str]) -> str:
    return hashlib.sha256(repr((tab, sorted(params.items()))).encode()).hexdigest()[:16]


class DeviceList(APIView):
    permission_classes = [requires(Capability.REFRESH_DEVICE_LIST)]

    @extend_schema(
        operation_id="listDevices",
        summary="Devices of a tab, searched, filtered and sorted as in the blade",
        parameters=LIST_PARAMETERS,
        responses={200: s.DeviceListSerializer, **errors(400)},
    )
    def get(self, request: Request) -> Response:
        tab = request.query_params.get("tab") or TAB_ALL
        params = {
            k: request.query_params[k] for k in ("q", *FILTER_PARAMS, "sort") if request.query_params.get(k)
        }
        try:
            _, per_page = paging({"per_page": request.query_params.get("per_page", "")})
            devices = device_list(tab, params)
        except InvalidQuery as exc:
            raise exceptions.ValidationError({"query": [str(exc)]}) from exc
        offset = 0
        digest = query_digest(tab, params)
        if request.query_params.get("cursor"):
            try:
                cursor = signing.loads(request.query_params["cursor"], salt=CURSOR_SALT)
                offset = int(cursor["o"])
                if cursor["q"] != digest or offset < 0:
                    raise ValueError
            except (signing.BadSignature, ValueError, KeyError, TypeError) as exc:
                raise exceptions.ValidationError(
                    {"cursor": ["The cursor is not one this query gave: pass next_cursor back as it came."]}
                ) from exc
        page = list(with_columns(devices, COLUMNS)[offset : offset + per_page + 1])
        more = len(page) > per_page
        next_cursor = signing.dumps({"o": offset + per_page, "q": digest}, salt=CURSOR_SALT) if more else None
        next_url = None
        if next_cursor:
            query = request.query_params.copy()
            query["cursor"] = next_cursor
            next_url = request.build_absolute_uri(f"{request.path}?{query.urlencode()}")
        return Response(
            {
                "results": s.DeviceSerializer(page[:per_page], many=True).data,
                "next_cursor": next_cursor,
                "next": next_url,
            }
        )


class DeviceDetail(APIView):
    permission_classes = [requires(Capability.REFRESH_DEVICE_LIST)]

    @extend_schema(
        operation_id="getDevice",
        summary="One device: every field, its checks, readiness report and status history",
        responses={200: s.DeviceDetailSerializer, **errors(404)},
    )
    def get(self, request: Request, device_id: str) -> Response:
        if (
            "\x00" in device_id or len(device_id) > s.MAX_ID
        ):  # no device has such an ID (PostgreSQL refuses NUL)
            raise exceptions.NotFound("No device has this Azure AD device ID.")
        device = get_object_or_404(
            Device.objects.with_last_discovered().prefetch_related(
                Prefetch(
                    "status_changes", queryset=DeviceStatusChange.objects.all()[:HISTORY], to_attr="history"
                )
            ),
            azure_ad_device_id=device_id,
        )
        device.readiness_report = ReadinessReport.objects.filter(azure_ad_device_id=device_id).first()
        device.status_history = device.history
        return Response(s.DeviceDetailSerializer(device).data)


ACTION_SLUGS = {"assign-ring": "assign_ring", "exclude": "exclude", "restore": "restore"}


class DeviceAction(APIView):
    permission_classes = [requires(Capability.DEVICE_ACTIONS)]

    @extend_schema(
        operation_id="deviceAction",
        summary="Assign ring, Exclude device or Restore excluded device, with an answer per device",
        parameters=[OpenApiParameter("action", str, OpenApiParameter.PATH, enum=list(ACTION_SLUGS))],
        request=s.ActionRequestSerializer,
        responses={200: s.ActionAnswerSerializer, **errors(400, 404, 413, 415)},
    )
    def post(self, request: Request, action: str) -> Response:
        key = ACTION_SLUGS.get(action)
        if key is None:
            raise exceptions.NotFound(f"No device action {action!r}: use one of {', '.join(ACTION_SLUGS)}.")
        body = s.ActionRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        ids, ring = body.validated_data["azureADDeviceIds"], body.validated_data.get("ring", "")
        if key == "assign_ring" and not ring:
            raise exceptions.ValidationError({"ring": ["Choose the ring: test, first, fast or broad."]})
        found = {d.azure_ad_device_id: d for d in Device.objects.filter(azure_ad_device_id__in=ids)}
        devices = [found[i] for i in dict.fromkeys(ids) if i in found]
        outcomes, run = actions.perform(request.user, key, devices, ring, request) if devices else ([], None)
        by_id = {o.device.azure_ad_device_id: o for o in outcomes}
        results = [
            {
                "azureADDeviceId": i,
                "device_name": by_id[i].device.device_name,
                "done": by_id[i].done,
                "message": by_id[i].message,
            }
            if i in by_id
            else {
                "azureADDeviceId": i,
                "device_name": "",
                "done": False,
                "message": "No device has this Azure AD device ID.",
            }
            for i in dict.fromkeys(ids)
        ]
        answer = {
            "action": key,
            "done": sum(1 for r in results if r["done"]),
            "results": results,
            "discovery_run": run.pk if run else None,
        }
        return Response(answer)


class Discoveries(APIView):
    permission_classes = [requires(Capability.DISCOVER_DEVICES)]

    @extend_schema(
        operation_id="startDiscovery",
        summary="Discover devices: start a discovery run (or find the one under way)",
        request=None,
        responses={202: s.DiscoveryStartSerializer, **errors()},
    )
    def post(self, request: Request) -> Response:
        run, started = request_discovery(request.user, DiscoveryRun.Trigger.API, request)
        return Response(
            {"started": started, "run": s.DiscoveryRunSerializer(run.reread()).data},
            status=status.HTTP_202_ACCEPTED,
        )


class DiscoveryDetail(APIView):
    permission_classes = [requires(Capability.REFRESH_DEVICE_LIST)]

    @extend_schema(
        operation_id="getDiscovery",
        summary="A discovery run: its status, progress, counts and errors",
        responses={200: s.DiscoveryRunSerializer, **errors(404)},
    )
    def get(self, request: Request, pk: int) -> Response:
        return Response(
            s.DiscoveryRunSerializer(get_object_or_404(DiscoveryRun.objects.with_progress(), pk=pk)).data
        )


class ReadinessReports(APIView):
    permission_classes = [requires(REPORT_READINESS)]

    @extend_schema(
        operation_id="postReadinessReports",
        summary="Readiness reports from devices: one, or a list of up to 1,000",
        description="The tenant file's report shape. A report for a device the portal does not know yet is kept "
        "until the device appears; a registered device's readiness status changes at once.",
        request={"application/json": s.READINESS_BODY_SCHEMA},
        responses={200: s.ReadinessAnswerSerializer, **errors(400, 413, 415)},
    )
    def post(self, request: Request) -> Response:
        data: Any = request.data
        reports = data if isinstance(data, list) else [data]
        if not reports:
            raise exceptions.ValidationError({"reports": ["Send one report, or a list of 1 to 1,000."]})
        if len(reports) > s.MAX_REPORTS:
            raise exceptions.ValidationError(
                {"reports": [f"At most {s.MAX_REPORTS} reports a request ({len(reports)} sent)."]}
            )
        with transaction.atomic():  # one commit for the reports, the devices and the audit entry
            result, updated = ingest_and_apply(reports)
            rejected = result.rejected
            if rejected and not (result.stored or result.unchanged):
                raise exceptions.ValidationError({"reports": rejected[:100]})
            self.audit(request, len(reports), result, len(rejected), updated)
        return Response(
            {
                "received": len(reports),
                "stored": result.stored,
                "unchanged": result.unchanged,
                "rejected": rejected,
                "devices_updated": updated,
            }
        )

    @staticmethod
    def audit(request: Request, received: int, result, rejected: int, updated: int) -> None:
        record_event(
            request.user,
            AuditEvent.Action.READINESS_REPORT,
            target=f"{received} report{'s' if received != 1 else ''}",
            request=request,
            result=f"{result.stored} stored, {result.unchanged} unchanged, {rejected} rejected; "
            f"{updated} devices updated",
        )


class Registrations(APIView):
    permission_classes = [requires(Capability.DISCOVER_DEVICES)]

    @extend_schema(
        operation_id="registerDevices",
        summary="Register devices by Azure AD device ID (Windows 365 provisioning), without group membership",
        request=s.DeviceIdsSerializer,
        responses={200: s.RegistrationAnswerSerializer, **errors(400, 413, 415)},
    )
    def post(self, request: Request) -> Response:
        body = s.DeviceIdsSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        answers = registrations.register(body.validated_data["azureADDeviceIds"], request.user.get_username())
        results = [
            {
                "azureADDeviceId": a.azure_ad_device_id,
                "result": a.result,
                "message": a.message,
                "ring": a.device.ring if a.device and a.device.is_registered else "",
                "readiness_status": a.device.readiness_status if a.device else "",
                "failed_checks": a.failed_checks,
            }
            for a in answers
        ]
        registered = sum(1 for a in answers if a.result == registrations.REGISTERED)
        record_event(
            request.user,
            AuditEvent.Action.REGISTRATION,
            target=", ".join(a.azure_ad_device_id for a in answers),
            request=request,
            result=f"{registered} of {len(answers)} registered",
            results=[{k: r[k] for k in ("azureADDeviceId", "result", "message")} for r in results],
        )
        return Response({"registered": registered, "results": results})
