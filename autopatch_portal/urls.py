"""The portal's URLs."""

from django.urls import include, path
from django.views.generic import RedirectView

handler400 = "accounts.views.signin.bad_request"
handler403 = "accounts.views.signin.permission_denied"
handler404 = "accounts.api.errors.page_not_found"

# /healthz is answered by autopatch_portal.health.HealthCheckMiddleware, before host checks and sessions.
urlpatterns = [
    path("", RedirectView.as_view(url="/devices/ready/", permanent=False, http_method_names=["get", "head"])),
    path("accounts/", include("accounts.urls")),
    path("devices/", include("devices.urls")),
    path("api/", include("devices.api.urls")),
]
