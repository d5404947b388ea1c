"""/healthz: whether this portal process can reach its database and its task broker, for container healthchecks."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.db import DatabaseError, connections
from django.http import HttpRequest, HttpResponse

from .celery import app as celery_app

PATH = "/healthz"
logger = logging.getLogger(__name__)


def database_answers() -> bool:
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except DatabaseError:
        logger.exception("healthz: the database does not answer")
        return False


def broker_answers() -> bool:
    try:
        with celery_app.connection_for_write(settings.CELERY_BROKER_URL) as broker:
            broker.ensure_connection(max_retries=1, interval_start=0, timeout=3)
        return True
    except (
        Exception
    ):  # kombu raises its transports' own errors (OperationalError, OSError, redis errors, ...)
        logger.exception("healthz: the task broker does not answer")
        return False


def healthz() -> HttpResponse:
    """200 "ok", or 503 "unavailable": no detail (the reasons go to the log), no cookie, never cached."""
    healthy = database_answers() and broker_answers()
    response = HttpResponse(
        "ok\n" if healthy else "unavailable\n",
        status=200 if healthy else 503,
        content_type="text/plain; charset=utf-8",
    )
    response["Cache-Control"] = "no-store"
    return response


class HealthCheckMiddleware:
    """Answers /healthz before anything else runs: a container healthcheck calls it by its internal address,
    without TLS and without a host name in ALLOWED_HOSTS, and needs no session or sign-in."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path == PATH and request.method in ("GET", "HEAD"):
            return healthz()
        return self.get_response(request)
