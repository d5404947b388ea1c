"""The rule preview page (Administration): paste a dynamic membership rule, see the directory's devices it
matches and how each would fare in the prerequisite checks. Service Administrators and Readers: it changes
nothing."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers

from accounts.access import capability_required
from accounts.roles import Capability
from autopatch_portal.tenant.membership_rules import SEED_HOST_POOL_RULE, RuleError, pointer
from devices.rule_preview import preview


@never_cache
@vary_on_headers("HX-Request")
@require_GET
@capability_required(Capability.REFRESH_DEVICE_LIST)
def rule_preview(request: HttpRequest) -> HttpResponse:
    rule = request.GET.get("rule", "")
    context: dict = {"rule": rule, "example": SEED_HOST_POOL_RULE}
    status = 200
    if rule.strip():
        try:
            context["preview"] = preview(rule)
        except RuleError as exc:
            line, caret = pointer(rule, exc.position)
            context["error"] = {
                "message": exc.message,
                "column": exc.position + 1,
                "line": line,
                "caret": caret,
            }
            status = (
                200 if request.htmx else 400
            )  # htmx swaps the error in place; a 4xx would go to the toast
    template = "devices/_rule_preview_results.html" if request.htmx else "devices/rule_preview.html"
    return render(request, template, context, status=status)
