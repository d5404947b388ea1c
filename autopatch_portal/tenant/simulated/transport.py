"""The transport swap: a requests adapter that hands Entra and Graph requests to a simulated tenant."""

from __future__ import annotations

import time

import requests
from django.conf import settings
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from .tenant import GRAPH_HOST, LOGIN_HOST, SimulatedTenant


class SimulatedTenantAdapter(BaseAdapter):
    """Answers each request from the tenant, after AUTOPATCH_SIMULATED_LATENCY_MS (read at every request, so a
    running portal or a test can change it) as a real round trip would take; concurrent requests wait at once."""

    def __init__(self, tenant: SimulatedTenant):
        super().__init__()
        self.tenant = tenant

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        latency = settings.AUTOPATCH_SIMULATED_LATENCY_MS
        if latency:
            time.sleep(latency / 1000)
        try:
            answer = self.tenant.handle(request.method, request.url, dict(request.headers), request.body)
        except TimeoutError as exc:
            raise requests.exceptions.ReadTimeout(str(exc), request=request) from exc
        response = requests.Response()
        response.status_code = answer.status
        response.headers = CaseInsensitiveDict(answer.headers)
        response._content = answer.body
        response.encoding = "utf-8"
        response.url = request.url
        response.request = request
        response.reason = requests.status_codes._codes.get(answer.status, ("",))[0].upper()
        response.connection = self
        return response

    def close(self) -> None:
        pass


def simulated_session(tenant: SimulatedTenant) -> requests.Session:
    """A requests.Session whose Entra and Graph traffic goes to `tenant`; MSAL takes it as http_client."""
    session = requests.Session()
    adapter = SimulatedTenantAdapter(tenant)
    session.mount(f"https://{LOGIN_HOST}/", adapter)
    session.mount(f"https://{GRAPH_HOST}/", adapter)
    return session
