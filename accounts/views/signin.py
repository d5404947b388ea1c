"""Sign-in and sign-out: local accounts with throttling, or the Entra ID page; the no-access and 403 pages."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import logout
from django.contrib.auth.views import LoginView
from django.core.exceptions import TooManyFieldsSent
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from accounts import entra
from accounts.audit import client_ip, record_event
from accounts.models import AuditEvent
from accounts.roles import Role, role_of
from accounts.throttle import account_name, lockout


def role_label(user) -> str:
    role = role_of(user)
    return Role(role).label if role else "no role"


class SignInView(LoginView):
    """/accounts/login/: Django's login form for local accounts, or the "Sign in with Microsoft" page."""

    template_name = "accounts/login.html"
    redirect_authenticated_user = True
    http_method_names = ["get", "post", "head"]

    def dispatch(self, request, *args, **kwargs):
        # LoginView sends a signed-in user on before View.dispatch would refuse a method it does not take.
        if request.method.lower() not in self.http_method_names:
            return self.http_method_not_allowed(request, *args, **kwargs)
        if settings.AUTOPATCH_AUTH == "entra" and request.method == "POST":
            return HttpResponseNotAllowed(["GET"], "Local accounts are off: sign in with Microsoft.")
        return super().dispatch(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        return super().get_context_data(entra=settings.AUTOPATCH_AUTH == "entra", **kwargs)

    def post(self, request, *args, **kwargs):
        username = account_name(request.POST.get("username", ""))
        locked = lockout(username, client_ip(request))
        if locked is not None:
            # The password is not even checked while locked, so guessing gains nothing.
            record_event(
                username or "anonymous",
                AuditEvent.Action.SIGN_IN_FAILED,
                target="local account",
                result="locked out",
                request=request,
            )
            form = self.get_form()
            form.errors.clear()
            form.add_error(None, locked.message)
            return self.render_to_response(self.get_context_data(form=form), status=429)
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form):
        # Counted under the name Django tried to sign in, not the one typed: look-alikes share one count.
        username = account_name(self.request.POST.get("username", ""))
        record_event(
            username or "anonymous",
            AuditEvent.Action.SIGN_IN_FAILED,
            target="local account",
            result="wrong name or password",
            request=self.request,
        )
        return super().form_invalid(form)

    def form_valid(self, form):
        response = super().form_valid(form)
        user = self.request.user
        record_event(
            user,
            AuditEvent.Action.SIGN_IN,
            target="local account",
            result=role_label(user),
            request=self.request,
        )
        if role_of(user) is None:
            return redirect("accounts:no_access")
        return response


@require_POST
def sign_out(request: HttpRequest) -> HttpResponse:
    """POST only (CSRF-protected). Entra users are also signed out of Entra ID, unless the tenant is simulated."""
    if not request.user.is_authenticated:
        return redirect(settings.LOGIN_URL)
    record_event(request.user, AuditEvent.Action.SIGN_OUT, result="signed out", request=request)
    was_entra = hasattr(request.user, "entra")
    logout(request)  # flushes the session, and with it the token cache
    if settings.AUTOPATCH_AUTH == "entra" and was_entra:
        config = entra.signin_config()
        if config.simulated is None:
            return redirect(entra.end_session_url(config, request.build_absolute_uri(settings.LOGIN_URL)))
    return redirect(settings.LOGIN_URL)


@require_GET
def no_access(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        return redirect(settings.LOGIN_URL)
    if role_of(request.user) is not None:
        return redirect(settings.LOGIN_REDIRECT_URL)
    return render(request, "accounts/no_access.html", status=403)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """403 for a role that may not do something: says what, and changes nothing."""
    message = str(exception) if exception and str(exception) else "You are not allowed to do that."
    template = "accounts/_forbidden.html" if getattr(request, "htmx", False) else "accounts/forbidden.html"
    return render(request, template, {"message": message}, status=403)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """400 for a request the portal does not read at all (Django refuses it before any view): says why."""
    if isinstance(exception, TooManyFieldsSent):
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
        message = f"The form sent more than {limit} fields, more than the portal reads in one request."
    else:
        message = "The request could not be read."
    template = "accounts/_refused.html" if getattr(request, "htmx", False) else "accounts/refused.html"
    return render(request, template, {"message": message}, status=400)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """A forged or stale form: refused with 403, nothing changed."""
    message = "The form was refused because its security token is missing or out of date. Reload the page and try again."
    template = "accounts/_forbidden.html" if getattr(request, "htmx", False) else "accounts/forbidden.html"
    return render(request, template, {"message": message}, status=403)
