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
