"""The audit log: who did what, when, and with what result. Written by the portal, never edited through it."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class AuditEvent(models.Model):
    class Action(models.TextChoices):
        SIGN_IN = "sign_in", "Sign-in"
        SIGN_IN_FAILED = "sign_in_failed", "Failed sign-in"
        SIGN_OUT = "sign_out", "Sign-out"
        DISCOVERY = "discovery", "Discovery"
        EXPORT = "export", "Export to CSV"
        COLUMNS = "columns", "Column change"
        DEVICE_ACTION = "device_action", "Device action"
        GROUP_OWNER = "group_owner", "Registration group owner"

    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.CharField(max_length=256)  # user name, or "schedule"
    action = models.CharField(max_length=32, choices=Action.choices, db_index=True)
    target = models.CharField(max_length=512, blank=True)  # what it acted on: a tab, device IDs, a group
    result = models.CharField(max_length=512, blank=True)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor} {self.action} {self.result}"
