"""The audit log (who did what, when, with what result; written by the portal, never edited through it),
and the Entra ID identity behind a signed-in user."""

from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone


class AuditLogIsAppendOnly(Exception):
    """An audit event cannot be changed or deleted once recorded."""


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
        GROUP_MEMBERS = "group_members", "Registration group members added"
        READINESS_SCRIPT = "readiness_script", "Readiness script deployment"
        API_KEY = "api_key", "API key"
        REGISTRATION = "registration", "Device registration"
        READINESS_REPORT = "readiness_report", "Readiness reports"

    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.CharField(max_length=256)  # user name, or "schedule"
    action = models.CharField(max_length=32, choices=Action.choices, db_index=True)
    target = models.CharField(max_length=512, blank=True)  # what it acted on: a tab, device IDs, a group
    result = models.CharField(max_length=512, blank=True)
    details = models.JSONField(default=dict, blank=True)
    source_ip = models.GenericIPAddressField("Source IP", null=True, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["action", "actor", "at"]),
            models.Index(fields=["action", "source_ip", "at"]),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor} {self.action} {self.result}"

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding:
            raise AuditLogIsAppendOnly("audit events are never changed")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AuditLogIsAppendOnly("audit events are never deleted")


class EntraIdentity(models.Model):
    """The Entra ID user (object ID in its tenant) that a portal user signs in as."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="entra")
    tenant_id = models.CharField(max_length=64)
    object_id = models.CharField("Object ID", max_length=64)
    user_principal_name = models.CharField(max_length=256, blank=True)
    last_sign_in = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant_id", "object_id"], name="one_user_per_entra_object")
        ]

    def __str__(self) -> str:
        return self.user_principal_name or self.object_id


class ApiKey(models.Model):
    """A key for the REST API: only its SHA-256 is kept (the key itself is shown once), with a short visible
    prefix that names it in lists. Revoking it stops it at once: every request looks the key up."""

    class Scope(models.TextChoices):
        ADMINISTRATOR = "administrator", "Administrator (everything a Service Administrator may do)"
        READER = "reader", "Reader (read only, as a Service Reader)"
        READINESS = "readiness", "Readiness (post readiness reports, nothing else)"

    PREFIX = "apk_"
    name = models.CharField(max_length=100, unique=True)
    scope = models.CharField(max_length=16, choices=Scope.choices)
    prefix = models.CharField(max_length=16)  # the key's first characters, to tell keys apart
    digest = models.CharField(max_length=64, unique=True)  # SHA-256 of the key, hex
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.CharField(max_length=256, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.CharField(max_length=256, blank=True)

    class Meta:
        ordering = ["revoked_at", "name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def digest_of(key: str) -> str:
        # A random 256-bit key needs no slow hash: SHA-256 cannot be reversed, and nothing is there to guess.
        return hashlib.sha256(key.encode()).hexdigest()

    @classmethod
    def issue(cls, name: str, scope: str, created_by: str = "") -> tuple[ApiKey, str]:
        """A new key: the row, and the key itself, which is never stored and cannot be shown again."""
        key = cls.PREFIX + secrets.token_urlsafe(32)
        row = cls.objects.create(
            name=name, scope=scope, prefix=key[:12], digest=cls.digest_of(key), created_by=created_by
        )
        return row, key

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
