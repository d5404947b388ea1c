"""API keys (Administration, Service Administrators only): create one (shown once) and revoke keys."""

from __future__ import annotations

from django import forms
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from accounts.access import administrator_required
from accounts.api_keys import MAX_NAME, KeyRefused, create_key, revoke_key
from accounts.models import ApiKey


class KeyForm(forms.Form):
    name = forms.CharField(max_length=MAX_NAME, label="Name", help_text="What will use it, e.g. windows-365")
    scope = forms.ChoiceField(choices=ApiKey.Scope.choices, label="Scope")


def page(request: HttpRequest, form: KeyForm, status: int = 200, **context) -> HttpResponse:
    keys = ApiKey.objects.all()
    return render(request, "accounts/api_keys.html", {"form": form, "keys": keys, **context}, status=status)


@never_cache
@require_http_methods(["GET", "POST"])
@administrator_required
def api_keys(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return page(request, KeyForm())
    form = KeyForm(request.POST)
    if not form.is_valid():
        return page(request, form, status=400)
    try:
        row, key = create_key(form.cleaned_data["name"], form.cleaned_data["scope"], request.user, request)
    except KeyRefused as exc:
        form.add_error("name", str(exc))
        return page(request, form, status=400)
    # The key is in this answer only (never stored, never in a redirect's URL): no-store keeps it out of caches.
    return page(request, KeyForm(), new_key=key, new_row=row)


@never_cache
@require_POST
@administrator_required
def revoke(request: HttpRequest, pk: int) -> HttpResponse:
    if revoke_key(pk, request.user, request) is None:
        raise Http404("No such API key.")
    return redirect("accounts:api_keys")
