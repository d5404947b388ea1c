"""Views of sign-in, the audit log and the registration group's owners, one module per page."""
