"""The readiness script the portal ships to devices through Intune Remediations, and what its output means."""
