from django.apps import AppConfig
from django.db.models.signals import post_migrate


class DevicesConfig(AppConfig):
    name = "devices"
    verbose_name = "Autopatch devices"

    def ready(self) -> None:
        from . import lookups  # noqa: F401 - registers field__any_of
        from .sightings import reinstall_after_migrate

        post_migrate.connect(reinstall_after_migrate, sender=self, dispatch_uid="devices-sighting-trigger")
