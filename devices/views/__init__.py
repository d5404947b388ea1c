"""Views of the device blade, one module per page or endpoint."""
