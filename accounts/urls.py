"""URLs for signing in and out and the audit log."""

from django.urls import path

from .views import api_keys, audit_log, entra_signin, signin

app_name = "accounts"
urlpatterns = [
    path("login/", signin.SignInView.as_view(), name="login"),
    path("logout/", signin.sign_out, name="logout"),
    path("no-access/", signin.no_access, name="no_access"),
    path("entra/start/", entra_signin.start, name="entra_start"),
    path("entra/callback/", entra_signin.callback, name="entra_callback"),
    path("entra/simulated-sign-in/", entra_signin.simulated_authorize, name="simulated_authorize"),
    path("audit/", audit_log.audit_log, name="audit_log"),
    path("audit/export.csv", audit_log.audit_export, name="audit_export"),
    path("api-keys/", api_keys.api_keys, name="api_keys"),
    path("api-keys/<int:pk>/revoke/", api_keys.revoke, name="revoke_api_key"),
]
