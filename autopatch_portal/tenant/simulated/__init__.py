"""The simulated tenant: Entra's and Graph's HTTP endpoints, answered in their own wire format.

Microsoft's cloud cannot be reached from the machines this project is built on, so the
simulated tenant answers the same requests at the transport: MSAL and the Graph client
run their real code over a requests.Session whose adapter is this tenant.
"""

from .tenant import SimulatedTenant, TenantFileError, load_tenant_file
from .transport import simulated_session

__all__ = ["SimulatedTenant", "TenantFileError", "load_tenant_file", "simulated_session"]
