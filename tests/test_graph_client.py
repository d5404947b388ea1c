"""The Graph client and MSAL over the simulated tenant: tokens, paging, throttling, errors."""

from __future__ import annotations

import msal
import pytest

from autopatch_portal.tenant.connection import SIMULATED_CLIENT_ID, SIMULATED_CLIENT_SECRET
from autopatch_portal.tenant.graph import GraphClient, GraphError, TokenError, client_token_provider
from autopatch_portal.tenant.simulated import SimulatedTenant, simulated_session


@pytest.fixture
def tenant(builder) -> SimulatedTenant:
    for _ in range(25):
        builder.device()
    builder.group("Nested", parent=builder.registration_group)
    return SimulatedTenant(builder.as_json())


def client_for(tenant: SimulatedTenant, waits: list[float] | None = None, **kwargs) -> GraphClient:
    session = simulated_session(tenant)
    app = msal.ConfidentialClientApplication(
        SIMULATED_CLIENT_ID,
        client_credential=SIMULATED_CLIENT_SECRET,
        authority=f"https://login.microsoftonline.com/{tenant.tenant_id}",
        http_client=session,
        instance_discovery=False,
    )
    sleep = waits.append if waits is not None else (lambda seconds: None)
    return GraphClient(session, client_token_provider(app), sleep=sleep, backoff=0.01, **kwargs)


def test_msal_gets_a_token_from_the_simulated_tenant_and_reuses_it(tenant):
    graph = client_for(tenant)

    graph.get("/v1.0/devices", {"$top": 1})
    graph.get("/v1.0/devices", {"$top": 1})

    token_path = f"POST /{tenant.tenant_id}/oauth2/v2.0/token"
    assert tenant.requests[token_path] == 1
    assert tenant.requests[f"GET /{tenant.tenant_id}/v2.0/.well-known/openid-configuration"] == 1


def test_pages_follow_the_whole_next_link(tenant):
    graph = client_for(tenant)

    pages = list(graph.pages("/v1.0/devices", {"$select": "id,deviceId", "$top": 10}))

    assert [len(page) for page in pages] == [10, 10, 5]
    assert {tuple(sorted(item)) for page in pages for item in page} == {("deviceId", "id")}
    assert graph.requests_made == 3


def test_group_members_carry_their_odata_type(tenant, builder):
    graph = client_for(tenant)

    members = [
        m
        for page in graph.pages(
            f"/v1.0/groups/{builder.registration_group['id']}/members",
            {"$select": "id,deviceId,displayName", "$top": 999},
        )
        for m in page
    ]

    types = [m["@odata.type"] for m in members]
    assert types.count("#microsoft.graph.device") == 25 and types.count("#microsoft.graph.group") == 1


def test_a_decimal_retry_after_is_waited_at_least_that_long(tenant):
    waits: list[float] = []
    graph = client_for(tenant, waits)
    tenant.inject("/v1.0/devices", 429, times=2, retry_after="2.128")

    graph.get("/v1.0/devices", {"$top": 1})

    assert waits == [2.128, 2.128]


def test_server_errors_back_off_a_bounded_number_of_times(tenant):
    waits: list[float] = []
    graph = client_for(tenant, waits, max_retries=4)
    tenant.inject("/v1.0/devices", 503, times=10)

    with pytest.raises(GraphError, match="gave up after 5 attempts") as raised:
        graph.get("/v1.0/devices")

    assert len(waits) == 4
    assert all(b >= a / 2 for a, b in zip(waits, waits[1:], strict=False))  # doubling, with jitter
    assert raised.value.status == 503


def test_a_client_error_is_not_retried_and_its_graph_message_is_kept(tenant):
    waits: list[float] = []
    graph = client_for(tenant, waits)

    with pytest.raises(GraphError) as raised:
        graph.get("/v1.0/groups/no-such-group/members")

    assert waits == []
    assert raised.value.status == 404 and raised.value.code == "Request_ResourceNotFound"
    assert "does not exist" in str(raised.value) and raised.value.request_id


def test_both_spellings_of_the_request_id_are_read(tenant):
    import requests

    from autopatch_portal.tenant.graph import parse_error

    response = requests.Response()
    response.status_code = 400
    response.url = "https://graph.microsoft.com/v1.0/devices"
    response._content = (
        b'{"error": {"code": "BadRequest", "message": "no", "innerError": {"requestId": "abc"}}}'
    )
    assert parse_error(response).request_id == "abc"


def test_an_oversized_page_is_refused_by_graph(tenant):
    graph = client_for(tenant)

    with pytest.raises(GraphError, match="Must be between 1 and 999"):
        graph.get("/v1.0/devices", {"$top": 1000})


def test_a_page_without_a_value_list_is_malformed(tenant):
    graph = client_for(tenant)

    with pytest.raises(GraphError, match="malformed page"):
        list(graph.pages(f"/v1.0/groups/{tenant.registration_group_id}"))


def test_wrong_app_credentials_give_a_clear_token_error(tenant):
    tenant.client_credentials = {SIMULATED_CLIENT_ID: "the real secret"}
    graph = client_for(tenant)

    with pytest.raises(TokenError, match="invalid_client"):
        graph.get("/v1.0/devices")


def test_graph_refuses_a_request_without_a_token(tenant):
    session = simulated_session(tenant)

    response = session.get("https://graph.microsoft.com/v1.0/devices")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "InvalidAuthenticationToken"


def test_beta_only_fields_are_refused_on_v1(tenant):
    graph = client_for(tenant)

    with pytest.raises(GraphError, match="skuFamily"):
        graph.get("/v1.0/deviceManagement/managedDevices", {"$select": "id,skuFamily"})
