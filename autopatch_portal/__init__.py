"""Autopatch Portal: a self-hostable replica of the Windows Autopatch device blade."""

from .celery import app as celery_app

__all__ = ("celery_app",)
