"""Every API error as a JSON body that says what is wrong, with a 4xx status: never an HTML page, never a 500."""

from __future__ import annotations

from typing import Any

import orjson
from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig, TooManyFieldsSent
from django.http import Http404
from rest_framework import exceptions, serializers, status
from rest_framework.parsers import BaseParser
from rest_framework.views import exception_handler as drf_exception_handler


class RequestTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "too_large"


class LimitedJSONParser(BaseParser):
    """JSON bodies up to AUTOPATCH_API_MAX_BODY_BYTES, parsed with orjson (strict: no NaN, valid UTF-8 only)."""

    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        limit = settings.AUTOPATCH_API_MAX_BODY_BYTES
        body = stream.read(limit + 1) if stream is not None else b""
        if len(body) > limit:
            raise RequestTooLarge(f"The request body is larger than {limit} bytes.")
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise exceptions.ParseError(f"The request body is not valid JSON: {exc}") from exc


def flatten(errors: Any, path: str = "") -> list[str]:
    """A validation error's messages as "field: message" lines, nested fields joined by dots."""
    if isinstance(errors, dict):
        return [
            line
            for key, value in errors.items()
            for line in flatten(value, f"{path}.{key}" if path else str(key))
        ]
    if isinstance(errors, list):
        if all(isinstance(e, str) for e in errors):
            return [f"{path}: {e}" if path and path != "non_field_errors" else str(e) for e in errors]
        return [line for i, value in enumerate(errors) if value for line in flatten(value, f"{path}[{i}]")]
    return [f"{path}: {errors}" if path else str(errors)]


def exception_handler(exc: Exception, context: dict) -> Any:
    """DRF's handler, with Django's own refusals turned into API errors and every body in one shape:
    {"status", "code", "detail"} plus "errors" (field: messages) for a request that did not validate."""
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "Not found.")
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    elif isinstance(exc, RequestDataTooBig):
        exc = RequestTooLarge()
    elif isinstance(exc, TooManyFieldsSent):
        exc = exceptions.ParseError("The request has too many fields.")
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    assert isinstance(exc, exceptions.APIException)
    body: dict[str, Any] = {"status": response.status_code}
    if isinstance(exc, exceptions.ValidationError):
        body["code"] = "invalid"
        lines = flatten(exc.detail)
        body["detail"] = "; ".join(lines[:20]) or "The request is not valid."
        body["errors"] = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
    else:
        body["code"] = exc.get_codes() if isinstance(exc.get_codes(), str) else exc.default_code
        body["detail"] = str(exc.detail)
    response.data = body
    return response


class ErrorSerializer(serializers.Serializer):
    """The body of every error answer (for the OpenAPI document)."""

    status = serializers.IntegerField()
    code = serializers.CharField()
    detail = serializers.CharField()
    errors = serializers.DictField(required=False)


def page_not_found(request, exception):
    """The portal's 404: JSON under /api/ (a URL no endpoint answers), the usual page elsewhere."""
    from django.http import JsonResponse
    from django.views.defaults import page_not_found as html_page_not_found

    if request.path.startswith("/api/"):
        body = {"status": 404, "code": "not_found", "detail": f"No API endpoint answers {request.path}."}
        return JsonResponse(body, status=404)
    return html_page_not_found(request, exception)
