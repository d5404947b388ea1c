"""The portal's URLs."""

from django.urls import include, path
from django.views.generic import RedirectView

handler403 = "accounts.views.signin.permission_denied"

urlpatterns = [
    path("", RedirectView.as_view(url="/devices/ready/", permanent=False)),
    path("accounts/", include("accounts.urls")),
    path("devices/", include("devices.urls")),
]
