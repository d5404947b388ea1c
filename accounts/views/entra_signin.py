"""Entra ID sign-in: start the authorization code flow, take Entra's answer, and the simulated tenant's sign-in page."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.contrib.auth import get_user_model, login
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import entra
from accounts.audit import record_event
from accounts.models import AuditEvent, EntraIdentity
from accounts.roles import Role, assign_role

FLOW_COOKIE = "entra_signin"
FLOW_COOKIE_SALT = "accounts.entra.flow"


def entra_only() -> None:
    if settings.AUTOPATCH_AUTH != "entra":
        raise Http404("Entra ID sign-in is not turned on.")


def redirect_uri(request: HttpRequest) -> str:
    return settings.AUTOPATCH_REDIRECT_URI or request.build_absolute_uri(reverse("accounts:entra_callback"))


def flow_cookie_options() -> dict:
    """Entra's answer is a cross-site POST: only a SameSite=None cookie (which must be Secure) comes with it.
    Over plain HTTP (development) only the simulated tenant answers, from the portal's own site, so Lax does."""
    secure = settings.SESSION_COOKIE_SECURE
    return {
        "path": reverse("accounts:entra_callback"),
        "secure": secure,
        "samesite": "None" if secure else "Lax",
    }


@require_GET
def start(request: HttpRequest) -> HttpResponse:
    """A new flow (state, nonce, PKCE) kept on the server, its state in this browser's cookie, then off to Entra."""
    entra_only()
    config = entra.signin_config()
    flow = entra.start(config, redirect_uri(request))
    wanted = request.GET.get("next", "")
    safe = url_has_allowed_host_and_scheme(wanted, {request.get_host()}, require_https=request.is_secure())
    entra.keep_flow(flow, wanted if safe else "")
    if config.simulated is not None:
        # A browser cannot reach the simulated tenant: the portal shows its sign-in page instead.
        response = redirect(f"{reverse('accounts:simulated_authorize')}?{urlsplit(flow['auth_uri']).query}")
    else:
        response = redirect(flow["auth_uri"])
    # The flow belongs to this browser: an answer posted from another one (login CSRF) finds no cookie.
    response.set_signed_cookie(
        FLOW_COOKIE,
        flow["state"],
        salt=FLOW_COOKIE_SALT,
        max_age=entra.FLOW_LIFETIME,
        httponly=True,
        **flow_cookie_options(),
    )
    return response


def refuse(request: HttpRequest, reason: str, status: int = 400) -> HttpResponse:
    record_event(
        "anonymous", AuditEvent.Action.SIGN_IN_FAILED, target="Entra ID", result=reason, request=request
    )
    response = render(request, "accounts/signin_failed.html", {"reason": reason}, status=status)
    forget_flow(response)
    return response


def forget_flow(response: HttpResponse) -> None:
    options = flow_cookie_options()
    response.delete_cookie(FLOW_COOKIE, path=options["path"], samesite=options["samesite"])


@csrf_exempt  # Entra's cross-site POST carries no CSRF token: the flow cookie, state, nonce and PKCE protect it
@require_POST
def callback(request: HttpRequest) -> HttpResponse:
    """Entra's answer: redeem the code with the flow's PKCE verifier, check the ID token, re-read the role."""
    entra_only()
    state = request.get_signed_cookie(
        FLOW_COOKIE, default=None, salt=FLOW_COOKIE_SALT, max_age=entra.FLOW_LIFETIME
    )
    kept = entra.take_flow(state) if state else None
    if kept is None:
        return refuse(
            request,
            "This sign-in was not started in this browser, took longer than 10 minutes, or was "
            "already used. Start again.",
        )
    flow, next_url = kept
    config = entra.signin_config()
    cache = entra.load_cache(request.session)
    try:
        signed_in = entra.finish(config, flow, request.POST.dict(), cache)
        role = entra.role_from_claims(signed_in.claims, entra.role_groups_from_graph(config, signed_in))
    except entra.SignInRefused as exc:
        return refuse(request, str(exc))
    claims = signed_in.claims
    user = user_for(claims, config.tenant_id)
    assign_role(user, role)
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    entra.save_cache(request.session, cache)
    record_event(
        user,
        AuditEvent.Action.SIGN_IN,
        target="Entra ID",
        result=Role(role).label if role else "no role",
        request=request,
        object_id=claims["oid"],
    )
    response = (
        redirect("accounts:no_access") if role is None else redirect(next_url or settings.LOGIN_REDIRECT_URL)
    )
    forget_flow(response)
    return response


@transaction.atomic
def user_for(claims: dict, tenant_id: str):
    """The portal user of this Entra object; created at the first sign-in, named after the current UPN."""
    users = get_user_model().objects
    upn = str(claims.get("preferred_username") or "")[:150]
    identity = (
        EntraIdentity.objects.select_related("user")
        .filter(tenant_id=tenant_id, object_id=claims["oid"])
        .first()
    )
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


class FormPostReader(HTMLParser):
    """The form of Entra's form_post answer: where it posts, and its hidden fields."""

    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {name: value or "" for name, value in attrs}
        if tag == "form" and not self.action:
            self.action = found.get("action", "")
        elif tag == "input" and found.get("type") == "hidden" and found.get("name"):
            self.fields[found["name"]] = found.get("value", "")


def read_form_post(page: str) -> tuple[str, dict[str, str]]:
    reader = FormPostReader()
    reader.feed(page)
    return reader.action, reader.fields


@require_http_methods(["GET", "POST"])
def simulated_authorize(request: HttpRequest) -> HttpResponse:
    """Stands in for Microsoft's sign-in page when the tenant is simulated: pick a user of the tenant file.

    The choice goes to the simulated tenant's authorize endpoint through the transport, exactly as MSAL's
    authorization URL would, and its form_post answer is handed to the browser, which posts it to the
    callback as it would post Entra's; a real tenant never reaches this page.
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
    action, fields = read_form_post(answer.text) if answer.status_code == 200 else ("", {})
    if action != redirect_uri(request):
        return render(
            request,
            "accounts/signin_failed.html",
            {"reason": "The simulated tenant refused the sign-in request."},
            status=400,
        )
    return render(request, "accounts/form_post.html", {"action": action, "fields": fields})
