"""The readiness report as device-side reporters and tenant files write it: the names of its checks."""

# A report's `checks` name these, in this order (Autopatch's post-registration readiness checks).
READINESS_CHECK_NAMES = (
    "Windows OS build, architecture and edition",
    "Windows update policies managed via Intune",
    "Windows update policies managed via GPO",
    "Office update policy managed via GPO",
    "Windows Autopatch network endpoints",
    "Microsoft Teams network endpoints",
    "Microsoft Edge network endpoints",
    "Internet connectivity",
)

# The detection script's output (devices/remediation/readiness.ps1): one compact JSON object
# {"schemaVersion": 1, "generatedDateTime": "...Z", "checks": [{"name", "result": "passed"|"failed", "detail"}]}.
# Intune keeps at most 2,048 characters of a detection script's output (preRemediationDetectionScriptOutput);
# the script keeps under it by shortening details, and the simulated tenant cuts longer output as Intune does.
REPORT_SCHEMA_VERSION = 1
SCRIPT_OUTPUT_LIMIT = 2048
