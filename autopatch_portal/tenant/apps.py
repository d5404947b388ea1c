"""The tenant package as a Django app, only so that `manage.py make_tenant` is found; it has no models."""

from django.apps import AppConfig


class TenantConfig(AppConfig):
    name = "autopatch_portal.tenant"
    label = "tenant"
    verbose_name = "Tenant connection"
