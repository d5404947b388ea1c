"""URLs of the device blade."""

from django.urls import path

from .views import actions, blade, columns, details, discover, export, group, readiness_script, rule_preview

app_name = "devices"
urlpatterns = [
    path("", blade.index, name="index"),
    path("discover/", discover.discover, name="discover"),
    path("discover/<int:pk>/", discover.discovery_run, name="discovery_run"),
    path("device/<int:pk>/", details.device_details, name="device"),
    path("actions/<slug:action>/", actions.device_action, name="action"),
    path("registration-group/", group.registration_group, name="registration_group"),
    path("registration-group/add/", group.add_devices, name="registration_group_add"),
    path("registration-group/additions/<str:pk>/", group.group_addition, name="group_addition"),
    path(
        "registration-group/additions/<str:pk>/answers.csv",
        group.group_addition_results,
        name="group_addition_results",
    ),
    path("registration-group/owner/", group.become_owner, name="become_owner"),
    path("dual-state/", group.dual_state, name="dual_state"),
    path("dual-state/export.csv", group.dual_state_export, name="dual_state_export"),
    path("registration-group/rule-preview/", rule_preview.rule_preview, name="rule_preview"),
    path("readiness-script/", readiness_script.readiness_script, name="readiness_script"),
    path("readiness-script/download/", readiness_script.download, name="readiness_script_download"),
    path("readiness-script/deploy/", readiness_script.deploy, name="readiness_script_deploy"),
    path("<slug:tab>/", blade.tab_view, name="tab"),
    path("<slug:tab>/export.csv", export.export_csv, name="export"),
    path("<slug:tab>/columns/", columns.column_chooser, name="columns"),
]
