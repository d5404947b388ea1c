"""URLs of the REST API: /api/v1/..., the OpenAPI document and its reference page."""

from django.urls import path
from drf_spectacular.renderers import OpenApiJsonRenderer2
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.renderers import JSONRenderer

from accounts.api.permissions import requires
from accounts.roles import Capability

from . import views

app_name = "api"


class JsonErrors:
    """Refusals of the document and its page are JSON too, whatever the page itself is written in."""

    def handle_exception(self, exc):
        self.request.accepted_renderer, self.request.accepted_media_type = JSONRenderer(), "application/json"
        return super().handle_exception(exc)


class Schema(JsonErrors, SpectacularAPIView):
    permission_classes = [requires(Capability.REFRESH_DEVICE_LIST)]
    renderer_classes = [OpenApiJsonRenderer2]  # application/json


class Reference(JsonErrors, SpectacularSwaggerSplitView):
    permission_classes = [requires(Capability.REFRESH_DEVICE_LIST)]
    url_name = "api:schema"


urlpatterns = [
    path("v1/devices", views.DeviceList.as_view(), name="devices"),
    path("v1/devices/actions/<slug:action>", views.DeviceAction.as_view(), name="device_action"),
    path("v1/devices/<str:device_id>", views.DeviceDetail.as_view(), name="device"),
    path("v1/discoveries", views.Discoveries.as_view(), name="discoveries"),
    path("v1/discoveries/<int:pk>", views.DiscoveryDetail.as_view(), name="discovery"),
    path("v1/readiness-reports", views.ReadinessReports.as_view(), name="readiness_reports"),
    path("v1/registrations", views.Registrations.as_view(), name="registrations"),
    path("schema/", Schema.as_view(), name="schema"),
    path("docs/", Reference.as_view(), name="docs"),
]
