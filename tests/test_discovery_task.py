"""The one discovery task: the hourly schedule, the button's path through a real Celery worker."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pytest
from celery.schedules import crontab

from autopatch_portal.celery import app
from devices.models import Device, DiscoveryRun, ReadinessStatus
from devices.runs import start_discovery

T = TypeVar("T")


def test_the_hourly_discovery_is_on_the_beat_schedule():
    entry = app.conf.beat_schedule["hourly-discovery"]

    assert entry["task"] == "devices.tasks.discover"
    assert entry["kwargs"] == {"trigger": "schedule"}
    assert entry["schedule"] == crontab(minute=0)
    app.loader.import_default_modules()
    assert "devices.tasks.discover" in app.tasks


def wait_while(reread: Callable[[], T], going: Callable[[T], bool], process, seconds: float = 60) -> T:
    """Read a row again (reread) until a real worker (process) is done with it (not going), and return it."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        row = reread()
        if not going(row):
            return row
        if process.poll() is not None:
            raise AssertionError(f"the worker exited: {process.stdout.read()}")
        time.sleep(0.2)
    process.terminate()
    raise AssertionError(
        f"{row} still going after {seconds} s; worker said: {process.communicate()[0][-3000:]}"
    )


def wait_for_run(run: DiscoveryRun, process, seconds: float = 60) -> DiscoveryRun:
    # reread: its status and whether it is in progress, read at once
    return wait_while(run.reread, lambda run: run.is_active, process, seconds)


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_runs_the_discovery_the_button_starts(builder, use_tenant, celery_worker_process):
    ready = builder.device(report=True)
    home = builder.device(sku_number=101)
    use_tenant(builder)
    worker = celery_worker_process()

    run, started = start_discovery(DiscoveryRun.Trigger.MANUAL, requested_by="alice")
    finished = wait_for_run(run, worker)

    assert started
    assert finished.status == DiscoveryRun.Status.SUCCEEDED, finished.errors
    assert finished.requested_by == "alice" and finished.trigger == DiscoveryRun.Trigger.MANUAL
    assert Device.objects.get(azure_ad_device_id=ready["deviceId"]).readiness_status == ReadinessStatus.ACTIVE
    assert Device.objects.get(azure_ad_device_id=home["deviceId"]).failed_checks == "Windows edition"


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_the_worker_consumes_from_redis(builder, use_tenant, celery_worker_process, settings):
    assert settings.CELERY_BROKER_URL.startswith("redis://")
    builder.device()
    use_tenant(builder)
    worker = celery_worker_process()

    run, _ = start_discovery(DiscoveryRun.Trigger.API)

    assert wait_for_run(run, worker).status == DiscoveryRun.Status.SUCCEEDED
    assert Device.objects.count() == 1
