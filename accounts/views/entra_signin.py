"""Entra ID sign-in: start the authorization code flow, take Entra's answer, and the simulated tenant's sign-in page."""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.contrib.auth import get_user_model, login
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods

from accounts import entra
from accounts.audit import record_event
from accounts.models import AuditEvent, EntraIdentity
from accounts.roles import Role, assign_role

SESSION_NEXT = "entra_next"


def entra_only() -> None:
    if settings.AUTOPATCH_AUTH != "entra":
        raise Http404("Entra ID sign-in is not turned on.")


def redirect_uri(request: HttpRequest) -> str:
    return settings.AUTOPATCH_REDIRECT_URI or request.build_absolute_uri(reverse("accounts:entra_callback"))


@require_GET
def start(request: HttpRequest) -> HttpResponse:
    """A new flow (state, nonce, PKCE) in the session, then off to Entra's sign-in page."""
    entra_only()
    config = entra.signin_config()
    flow = entra.start(config, redirect_uri(request))
    request.session[entra.SESSION_FLOW] = flow
    wanted = request.GET.get("next", "")
    safe = url_has_allowed_host_and_scheme(wanted, {request.get_host()}, require_https=request.is_secure())
    request.session[SESSION_NEXT] = wanted if safe else ""
    if config.simulated is not None:
        # A browser cannot reach the simulated tenant: the portal shows its sign-in page instead.
        return redirect(f"{reverse('accounts:simulated_authorize')}?{urlsplit(flow['auth_uri']).query}")
    return redirect(flow["auth_uri"])


def refuse(request: HttpRequest, reason: str, status: int = 400) -> HttpResponse:
    record_event("anonymous", AuditEvent.Action.SIGN_IN_FAILED, target="Entra ID", result=reason, request=request)
    return render(request, "accounts/signin_failed.html", {"reason": reason}, status=status)


@require_GET
def callback(request: HttpRequest) -> HttpResponse:
    """Entra's answer: redeem the code with the flow's PKCE verifier, check the ID token, re-read the role."""
    entra_only()
    flow = request.session.pop(entra.SESSION_FLOW, None)
    if not flow:
        return refuse(request, "This sign-in was not started in this browser, or was already used. Start again.")
    config = entra.signin_config()
    cache = entra.load_cache(request.session)
    try:
        claims = entra.finish(config, flow, request.GET.dict(), cache)
        role = entra.role_from_claims(claims)
    except entra.SignInRefused as exc:
        return refuse(request, str(exc))
    user = user_for(claims, config.tenant_id)
    assign_role(user, role)
    next_url = request.session.pop(SESSION_NEXT, "")
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    entra.save_cache(request.session, cache)
    record_event(user, AuditEvent.Action.SIGN_IN, target="Entra ID", result=Role(role).label if role else "no role",
                 request=request, object_id=claims["oid"])  # fmt: skip
    if role is None:
        return redirect("accounts:no_access")
    return redirect(next_url or settings.LOGIN_REDIRECT_URL)


@transaction.atomic
def user_for(claims: dict, tenant_id: str):
    """The portal user of this Entra object; created at the first sign-in, named after the current UPN."""
    users = get_user_model().objects
    upn = str(claims.get("preferred_username") or "")[:150]
    identity = EntraIdentity.objects.select_related("user").filter(tenant_id=tenant_id, object_id=claims["oid"]).first()
    if identity is None:
        name = upn if upn and not users.filter(username=upn).exists() else claims["oid"]
        user = users.create_user(username=name)  # no password: this user signs in through Entra ID only
        identity = EntraIdentity(user=user, tenant_id=tenant_id, object_id=claims["oid"])
    user = identity.user
    if upn and user.username != upn and not users.filter(username=upn).exists():
        user.username = upn
        user.save(update_fields=["username"])
    identity.user_principal_name = upn
    identity.last_sign_in = timezone.now()
    identity.save()
    return user


@require_http_methods(["GET", "POST"])
def simulated_authorize(request: HttpRequest) -> HttpResponse:
    """Stands in for Microsoft's sign-in page when the tenant is simulated: pick a user of the tenant file.

    The choice goes to the simulated tenant's authorize endpoint through the transport, exactly as MSAL's
    authorization URL would; a real tenant never reaches this page.
    """
    entra_only()
    config = entra.signin_config()
    if config.simulated is None:
        raise Http404("The tenant is not simulated.")
    query = request.GET.dict()
    if request.method == "GET":
        users = sorted(config.simulated.users.values(), key=lambda u: u.get("displayName", ""))
        return render(request, "accounts/simulated_authorize.html", {"users": users, "query": query})
    url = f"{config.authority}/oauth2/v2.0/authorize?{urlencode({**query, 'login_hint': request.POST.get('login_hint', '')})}"
    answer = config.session.get(url, allow_redirects=False, timeout=10)
    location = answer.headers.get("Location", "")
    if answer.status_code != 302 or not location.startswith(redirect_uri(request)):
        return render(request, "accounts/signin_failed.html", {"reason": "The simulated tenant refused the sign-in request."},
                      status=400)  # fmt: skip
    return redirect(location)
