"""What the device API takes and answers. Device fields are the blade's columns (devices.columns), by key."""

from __future__ import annotations

from typing import Any

from django.db import models
from rest_framework import serializers

from devices.actions import MAX_DEVICES
from devices.columns import COLUMNS, Column
from devices.models import DiscoveryRun, Ring
from devices.readiness import MAX_DETAIL, MAX_ID, MAX_REPORT_CHECKS, READINESS_CHECKS

MAX_REPORTS = 1000


def column_field(column: Column) -> serializers.Field:
    """A read-only field for a column: its stored value (choice values, not labels), dates in ISO 8601."""
    field = column.model_field()
    source = column.field.replace("__", ".") if column.field != column.key else None
    label = column.title
    kwargs: dict[str, Any] = {"read_only": True, "help_text": label, **({"source": source} if source else {})}
    if isinstance(field, models.DateTimeField):
        return serializers.DateTimeField(allow_null=True, **kwargs)
    if isinstance(field, models.BooleanField):
        return serializers.BooleanField(**kwargs)
    if field.choices:
        return serializers.ChoiceField(choices=field.choices, allow_blank=True, **kwargs)
    return serializers.CharField(**kwargs)


DeviceSerializer = type(
    "DeviceSerializer",
    (serializers.Serializer,),
    {
        "__doc__": "A device as the blade's table shows it: every column, by its key.",
        **{column.key: column_field(column) for column in COLUMNS},
    },
)


class CheckSerializer(serializers.Serializer):
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=["prerequisite", "readiness"])
    passed = serializers.BooleanField()
    reason = serializers.CharField(allow_blank=True)
    remediation = serializers.CharField(allow_blank=True)


class ReportCheckSerializer(serializers.Serializer):
    name = serializers.ChoiceField(choices=list(READINESS_CHECKS))
    result = serializers.ChoiceField(choices=["passed", "failed"])
    detail = serializers.CharField(allow_blank=True, required=False, max_length=MAX_DETAIL)


class StoredReportSerializer(serializers.Serializer):
    generatedDateTime = serializers.DateTimeField(source="generated_at")
    receivedDateTime = serializers.DateTimeField(source="received_at")
    checks = ReportCheckSerializer(many=True)


class StatusChangeSerializer(serializers.Serializer):
    from_status = serializers.CharField(allow_blank=True)
    to_status = serializers.CharField()
    changed_at = serializers.DateTimeField()
    cause = serializers.CharField()
    discovery_run = serializers.IntegerField(source="run_id", allow_null=True)


class DeviceDetailSerializer(DeviceSerializer):  # type: ignore[misc, valid-type]
    """Every field of a device, its checks, its readiness report and its status history (newest first)."""

    operating_system = serializers.CharField()
    entra_object_id = serializers.CharField()
    in_registration_group = serializers.BooleanField()
    first_discovered_at = serializers.DateTimeField()
    checks = CheckSerializer(many=True, source="check_details")
    readiness_report = StoredReportSerializer(allow_null=True)
    status_history = StatusChangeSerializer(many=True)


class DeviceListSerializer(serializers.Serializer):
    results = DeviceSerializer(many=True)  # type: ignore[operator]
    next_cursor = serializers.CharField(allow_null=True, help_text="Pass as `cursor` for the next page.")
    next = serializers.CharField(allow_null=True, help_text="The URL of the next page, or null on the last.")


class DeviceIdsSerializer(serializers.Serializer):
    azureADDeviceIds = serializers.ListField(
        child=serializers.CharField(max_length=MAX_ID, trim_whitespace=True),
        min_length=1,
        max_length=MAX_DEVICES,
        help_text=f"Azure AD device IDs (Entra deviceId), at most {MAX_DEVICES}.",
    )

    def validate_azureADDeviceIds(self, ids: list[str]) -> list[str]:
        if any("\x00" in i for i in ids):
            raise serializers.ValidationError("A device ID contains a NUL character.")
        return ids


class ActionRequestSerializer(DeviceIdsSerializer):
    ring = serializers.ChoiceField(
        choices=Ring.choices, required=False, help_text="The ring, for assign-ring (required there)."
    )


class ActionResultSerializer(serializers.Serializer):
    azureADDeviceId = serializers.CharField()
    device_name = serializers.CharField(allow_blank=True)
    done = serializers.BooleanField()
    message = serializers.CharField()


class ActionAnswerSerializer(serializers.Serializer):
    action = serializers.CharField()
    done = serializers.IntegerField(help_text="How many devices the action was done (or already done) for.")
    results = ActionResultSerializer(many=True)
    discovery_run = serializers.IntegerField(
        allow_null=True, help_text="Restore: the run that evaluates them."
    )


class DiscoveryRunSerializer(serializers.ModelSerializer):
    active = serializers.BooleanField(source="is_active")

    class Meta:
        model = DiscoveryRun
        fields = [
            "id",
            "trigger",
            "requested_by",
            "status",
            "active",
            "queued_at",
            "started_at",
            "finished_at",
            "progress",
            "counts",
            "errors",
            "covered_by",
        ]


class DiscoveryStartSerializer(serializers.Serializer):
    started = serializers.BooleanField(help_text="False when a run already under way covers this request.")
    run = DiscoveryRunSerializer()


class FailedCheckSerializer(serializers.Serializer):
    name = serializers.CharField()
    reason = serializers.CharField(allow_blank=True)
    remediation = serializers.CharField(allow_blank=True)


class RegistrationResultSerializer(serializers.Serializer):
    azureADDeviceId = serializers.CharField()
    result = serializers.ChoiceField(choices=["registered", "alreadyRegistered", "notRegistered"])
    message = serializers.CharField()
    ring = serializers.CharField(allow_blank=True)
    readiness_status = serializers.CharField(allow_blank=True)
    failed_checks = FailedCheckSerializer(many=True)


class RegistrationAnswerSerializer(serializers.Serializer):
    registered = serializers.IntegerField()
    results = RegistrationResultSerializer(many=True)


class ReadinessAnswerSerializer(serializers.Serializer):
    received = serializers.IntegerField()
    stored = serializers.IntegerField(help_text="Reports newer than the one kept for their device.")
    unchanged = serializers.IntegerField(help_text="Reports no newer than the one kept.")
    rejected = serializers.ListField(child=serializers.CharField(), help_text="Why each rejected report was.")
    devices_updated = serializers.IntegerField(
        help_text="Registered devices whose readiness status and checks the reports changed at once."
    )


# The body of POST /readiness-reports, for the OpenAPI document: one report (the tenant file's shape) or a list.
REPORT_SCHEMA = {
    "type": "object",
    "required": ["azureADDeviceId", "generatedDateTime", "checks"],
    "properties": {
        "azureADDeviceId": {"type": "string", "minLength": 1, "maxLength": MAX_ID},
        "generatedDateTime": {"type": "string", "format": "date-time"},
        "checks": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_REPORT_CHECKS,
            "items": {
                "type": "object",
                "required": ["name", "result"],
                "properties": {
                    "name": {"type": "string", "enum": list(READINESS_CHECKS)},
                    "result": {"type": "string", "enum": ["passed", "failed"]},
                    "detail": {"type": "string", "maxLength": MAX_DETAIL},
                },
            },
        },
    },
}
READINESS_BODY_SCHEMA = {
    "oneOf": [
        REPORT_SCHEMA,
        {"type": "array", "minItems": 1, "maxItems": MAX_REPORTS, "items": REPORT_SCHEMA},
    ]
}
