"""Access checks for views: every view and endpoint names the capability it needs."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django_htmx.http import HttpResponseClientRedirect

from .roles import ROLE_CAPABILITIES, Role, role_of


def has_capability(user, capability: str) -> bool:
    """Whether the user's role has the capability, from the seed's role table as the API reads it: the role is
    read once per request (role_of), where Django's has_perm read the user's and the groups' permissions in two
    more queries on every page."""
    role = role_of(user)
    return role is not None and capability in ROLE_CAPABILITIES[role]


def no_access(request: HttpRequest) -> HttpResponse:
    """The page for someone signed in who holds neither portal role: says why, shows nothing else."""
    return render(request, "accounts/no_access.html", status=403)


def refused(request: HttpRequest, message: str) -> HttpResponse:
    """The 403 page, returned rather than raised: Django logs one line for it, not a traceback."""
    from .views.signin import permission_denied

    return permission_denied(request, PermissionDenied(message))


def role_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Signed in with a portal role; anonymous users go to sign-in, signed-in users without a role get 403."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not request.user.is_authenticated:
            htmx = getattr(request, "htmx", None)
            if (
                htmx and not htmx.history_restore_request
            ):  # the session ended (e.g. signed out in another tab): the whole page goes to sign-in
                return HttpResponseClientRedirect(
                    redirect_to_login(htmx.current_url_abs_path or "/")["Location"]
                )
            return redirect_to_login(request.get_full_path())
        if role_of(request.user) is None:
            return no_access(request)
        return view(request, *args, **kwargs)

    return wrapper


def capability_required(capability: str) -> Callable:
    """A role that has `capability` (from the seed's role table), else 403; anonymous users go to sign-in."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @role_required
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not has_capability(request.user, capability):
                return refused(request, f"Your role does not allow: {capability.replace('_', ' ')}.")
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


def administrator_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Service Administrators only (the audit log, the registration group's owners); others get 403."""

    @role_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if role_of(request.user) != Role.ADMINISTRATOR:
            return refused(request, "Only Service Administrators can open this page.")
        return view(request, *args, **kwargs)

    return wrapper
