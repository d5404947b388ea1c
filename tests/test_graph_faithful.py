"""Graph as a real tenant answers it: 503 Retry-After, Intune's error text, JSON batching, list blanks, page sizes,
`$filter` quoting and latency, through the real MSAL and Graph client over the simulated tenant."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from autopatch_portal.env import ImproperEnvironment, envint
from autopatch_portal.tenant import directory
from autopatch_portal.tenant.directory import BLANKS, fill_list_blanks, managed_device_url
from autopatch_portal.tenant.graph import GraphError, intune_message
from autopatch_portal.tenant.simulated import SimulatedTenant, TenantFileError, delta
from devices.checks import (
    CO_MANAGEMENT_WORKLOADS,
    OS_BUILD_AND_ARCHITECTURE,
    WINDOWS_EDITION,
    Candidate,
    evaluate_prerequisites,
)
from tests.test_graph_client import client_for

MANAGED = "/beta/deviceManagement/managedDevices"
CO_MANAGED = {"management_agent": "configurationManagerClientMdm", "trust_type": "ServerAd"}


def managed_list(graph) -> list[dict]:
    return [item for page in directory.managed_device_pages(graph) for item in page]


# -- throttling and Intune's errors ---------------------------------------------------------------


def test_a_503_with_retry_after_is_waited_out_as_long_as_it_asks(builder):
    builder.device()
    tenant = SimulatedTenant(builder.as_json())
    waits: list[float] = []
    graph = client_for(tenant, waits)
    tenant.inject("/v1.0/devices", 503, times=2, retry_after="7.5")

    answer = graph.get("/v1.0/devices")

    assert waits == [7.5, 7.5]
    assert len(answer["value"]) == 1


def test_intunes_error_text_is_unwrapped_into_a_readable_message(builder):
    builder.device()
    tenant = SimulatedTenant(builder.as_json())
    graph = client_for(tenant)

    with pytest.raises(GraphError) as raised:
        graph.get(MANAGED, {"$top": 1001})

    message = str(raised.value)
    assert "Invalid page size specified: '1001'. Must be between 1 and 1000 inclusive." in message
    assert "activity ID " in message and raised.value.request_id in message
    assert (
        "_version" not in message
        and "CustomApiErrorPhrase" not in message
        and "manage.microsoft.com" not in message
    )


def test_intunes_inline_support_details_are_shortened_too():
    text = (
        "Application is not authorized to perform this operation - Operation ID (for customer support): "
        "00000000-0000-0000-0000-000000000000 - Activity ID: cc7fa3b3-bb25-420b-bfb2-1498e598ba43 - Url: "
        "https://example.manage.microsoft.com/Service/Resource/RESTendpoint?api-version=2017-03-06 - "
        "CustomApiErrorPhrase: "
    )

    assert intune_message(text) == (
        "Application is not authorized to perform this operation "
        "(activity ID cc7fa3b3-bb25-420b-bfb2-1498e598ba43)"
    )
    assert intune_message("Resource 'x' does not exist.") == "Resource 'x' does not exist."
    nested = (
        '{\r\n  "_version": 3,\r\n  "Message": "An internal server error has occurred - Operation ID (for customer '
        "support): 5c0e6f2a-1b7d-4e55-9a54-3f0f2a4c1d11 - Activity ID: 7d2f1c7e-88aa-4b0e-b5a7-0e4c9d1f2a33 - Url: "
        'https://fef.msua06.manage.microsoft.com/x",\r\n  "CustomApiErrorPhrase": "",\r\n  "RetryAfter": null\r\n}'
    )
    assert intune_message(nested) == (
        "An internal server error has occurred (operation ID "
        "5c0e6f2a-1b7d-4e55-9a54-3f0f2a4c1d11, activity ID 7d2f1c7e-88aa-4b0e-b5a7-0e4c9d1f2a33)"
    )


@pytest.mark.django_db
def test_a_discovery_run_records_intunes_message_not_its_json(builder, use_tenant, settings):
    from devices.models import DiscoveryRun
    from devices.runs import discover_now

    settings.AUTOPATCH_GRAPH_MAX_RETRIES = 0
    builder.device()
    tenant = use_tenant(builder)
    tenant.inject(MANAGED, 500, times=1)

    run = discover_now()

    assert run.status == DiscoveryRun.Status.FAILED
    message = run.errors[0]["message"]
    assert "Graph answered 500 ServiceUnavailable" in message and "Injected failure. (activity ID " in message
    assert "_version" not in message and "\\r\\n" not in message


# -- JSON batching --------------------------------------------------------------------------------


def test_45_lookups_go_in_3_batches_and_a_throttled_item_is_retried_alone_after_its_retry_after(builder):
    for _ in range(45):
        builder.device()
    tenant = SimulatedTenant(builder.as_json())
    waits: list[float] = []
    graph = client_for(tenant, waits)
    ids = [m["id"] for m in builder.managed]
    tenant.inject(f"{MANAGED}/{ids[30]}", 429, retry_after="4.25")

    answers = graph.batch([managed_device_url(managed_id) for managed_id in ids])

    assert [a.body["id"] for a in answers] == ids  # in the requests' order, though Graph answered in another
    assert all(a.status == 200 and a.error is None for a in answers)
    assert tenant.requests["POST /beta/$batch"] == 4  # 20 + 20 + 5, then the throttled one alone
    assert waits == [4.25]
    assert tenant.requests[f"GET {MANAGED}/{ids[30]}"] == 2
    assert tenant.requests[f"GET {MANAGED}/{ids[0]}"] == 1


def test_an_item_error_is_returned_on_its_answer_not_raised(builder):
    builder.device()
    tenant = SimulatedTenant(builder.as_json())
    waits: list[float] = []
    graph = client_for(tenant, waits, max_retries=2)
    known = builder.managed[0]["id"]
    tenant.inject(f"{MANAGED}/throttled", 429, times=10, retry_after="1")

    known_answer, missing, throttled = graph.batch(
        [managed_device_url(known), managed_device_url("no-such-device"), f"{MANAGED}/throttled"]
    )

    assert known_answer.error is None and known_answer.body["id"] == known
    assert missing.status == 404 and "Resource with id 'no-such-device' was not found." in str(missing.error)
    assert "_version" not in str(missing.error)
    assert throttled.status == 429 and "gave up after 3 attempts" in str(throttled.error)
    assert waits == [1.0, 1.0]


def test_v1_and_beta_requests_go_to_their_own_batch_endpoints(builder):
    builder.device()
    tenant = SimulatedTenant(builder.as_json())
    graph = client_for(tenant)

    devices, managed = graph.batch(["/v1.0/devices?$top=1", f"{MANAGED}?$top=1"])

    assert len(devices.body["value"]) == 1 and len(managed.body["value"]) == 1
    assert tenant.requests["POST /v1.0/$batch"] == 1 and tenant.requests["POST /beta/$batch"] == 1


def test_a_batch_over_20_requests_is_refused_by_graph(builder):
    tenant = SimulatedTenant(builder.as_json())
    graph = client_for(tenant)
    requests = [{"id": str(i), "method": "GET", "url": "/devices"} for i in range(21)]

    with pytest.raises(GraphError, match="the limit is 20"):
        graph.post("/v1.0/$batch", {"requests": requests})


# -- list blanks ----------------------------------------------------------------------------------


def test_the_list_leaves_blanks_that_the_batched_lookups_fill(builder):
    plain = builder.device(list_blank=True)
    co_managed = builder.device(list_blank=True, **CO_MANAGED)
    builder.device()
    tenant = SimulatedTenant(builder.as_json())
    graph = client_for(tenant)
    listed = managed_list(graph)
    by_device = {m["azureADDeviceId"]: m for m in listed}
    assert by_device[plain["deviceId"]]["processorArchitecture"] == "unknown"
    assert by_device[plain["deviceId"]]["skuNumber"] == 0
    assert by_device[co_managed["deviceId"]]["configurationManagerClientEnabledFeatures"] is None

    items, unresolved = fill_list_blanks(graph, listed)

    assert unresolved == {}
    assert [(m["processorArchitecture"], m["skuNumber"]) for m in items] == [("x64", 4)] * 3
    features = {m["azureADDeviceId"]: m.get("configurationManagerClientEnabledFeatures") for m in items}
    assert features[co_managed["deviceId"]]["officeApps"] is True
    assert not any(BLANKS in m for m in items)
    assert tenant.requests["POST /beta/$batch"] == 1
    assert (
        sum(n for key, n in tenant.requests.items() if key.startswith(f"GET {MANAGED}/")) == 2
    )  # blanks only


def test_a_share_of_a_generated_tenant_lists_blank_and_a_file_without_it_lists_none(builder):
    for _ in range(200):
        builder.device()
    without = SimulatedTenant(builder.as_json())
    builder.list_blank_share = 0.1

    with_share = SimulatedTenant(builder.as_json())

    assert without.list_blank_ids == frozenset()
    assert 5 <= len(with_share.list_blank_ids) <= 40
    assert (
        with_share.list_blank_ids == SimulatedTenant(builder.as_json()).list_blank_ids
    )  # the same at every load


def test_generated_tenants_and_the_demo_tenant_list_a_few_blanks():
    from autopatch_portal.tenant.connection import DEMO_TENANT_FILE
    from autopatch_portal.tenant.simulated import load_tenant_file
    from autopatch_portal.tenant.simulated.generator import make_tenant

    generated = SimulatedTenant(make_tenant(500, seed=2).as_json())
    demo = load_tenant_file(DEMO_TENANT_FILE)

    assert 0 < len(generated.list_blank_ids) < len(generated.managed_devices) * 0.05
    assert 0 < len(demo.list_blank_ids) < len(demo.managed_devices) * 0.05


@pytest.mark.parametrize(
    "simulation", [{"listBlankShare": 2}, {"listBlankShare": "5%"}, {"listBlankIds": ["nope"]}, []]
)
def test_a_wrong_simulation_setting_names_what_is_wrong(builder, simulation):
    builder.device()
    data = builder.as_json() | {"simulation": simulation}

    with pytest.raises(TenantFileError, match="simulation"):
        SimulatedTenant(data)


def test_a_blank_that_could_not_be_looked_up_is_marked_and_fails_no_check(builder):
    blank = builder.device(list_blank=True, **CO_MANAGED)
    tenant = SimulatedTenant(builder.as_json())
    graph = client_for(tenant, max_retries=1)
    managed_id = builder.managed_device_of(blank)["id"]
    tenant.inject(f"{MANAGED}/{managed_id}", 503, times=10, retry_after="0")

    items, unresolved = fill_list_blanks(graph, managed_list(graph))

    assert list(unresolved) == [managed_id] and "gave up after 2 attempts" in unresolved[managed_id]
    assert items[0][BLANKS] == [
        "processorArchitecture",
        "skuNumber",
        "configurationManagerClientEnabledFeatures",
    ]
    results = {r.name: r for r in evaluate_prerequisites(Candidate(blank, items[0], datetime.now(UTC)))}
    assert all(r.passed for r in results.values())
    for name in (OS_BUILD_AND_ARCHITECTURE, WINDOWS_EDITION, CO_MANAGEMENT_WORKLOADS):
        assert "has not reported" in results[name].reason
    # The same listed values, taken as the device's own, fail it: the marker is what keeps it from failing.
    unmarked = {key: value for key, value in items[0].items() if key != BLANKS}
    failed = {
        r.name for r in evaluate_prerequisites(Candidate(blank, unmarked, datetime.now(UTC))) if not r.passed
    }
    assert {OS_BUILD_AND_ARCHITECTURE, WINDOWS_EDITION, CO_MANAGEMENT_WORKLOADS} <= failed


def test_a_blank_the_lookup_confirms_still_fails_as_before(builder):
    arm = builder.device(architecture="unknown")
    tenant = SimulatedTenant(builder.as_json())
    graph = client_for(tenant)

    items, unresolved = fill_list_blanks(graph, managed_list(graph))

    assert unresolved == {} and BLANKS not in items[0]
    result = {r.name: r for r in evaluate_prerequisites(Candidate(arm, items[0], datetime.now(UTC)))}
    assert not result[OS_BUILD_AND_ARCHITECTURE].passed
    assert "architecture is unknown" in result[OS_BUILD_AND_ARCHITECTURE].reason


# -- $filter quoting and page sizes ---------------------------------------------------------------


def test_a_quote_in_a_filtered_name_is_doubled(builder, settings):
    settings.AUTOPATCH_REGISTRATION_GROUP_NAME = "O'Brien's devices"
    builder.registration_group["displayName"] = "O'Brien's devices"
    tenant = SimulatedTenant(builder.as_json())
    graph = client_for(tenant)

    assert directory.registration_group_id(graph) == builder.registration_group["id"]
    with pytest.raises(GraphError, match="400"):
        graph.get("/v1.0/groups", {"$filter": "displayName eq 'O'Brien's devices'"})
    assert (
        directory.equals("operatingSystem", "Windows")
        == directory.WINDOWS_ONLY
        == "operatingSystem eq 'Windows'"
    )


def test_managed_devices_filter_on_their_last_check_in(builder):
    builder.device(last_sync_days=0.5)
    builder.device(last_sync_days=3)
    builder.device(operating_system="iOS", last_sync_days=0.1)
    graph = client_for(SimulatedTenant(builder.as_json()))
    since = (builder.now - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    answer = graph.get(MANAGED, {"$filter": f"{directory.WINDOWS_ONLY} and lastSyncDateTime gt {since}"})

    assert [m["azureADDeviceId"] for m in answer["value"]] == [builder.devices[0]["deviceId"]]


def test_a_groups_members_cast_to_a_type_follow_the_members_added_to_it(builder):
    nested = builder.group("Finance laptops", parent=builder.registration_group)
    other = builder.group("Sales laptops")
    user = builder.user("Ada")
    device = builder.device(name="FIN-01")
    tenant = SimulatedTenant(builder.as_json())
    delta.install(
        tenant
    )  # Graph's delta functions and the members cast to a type, as the connection installs them
    graph = client_for(tenant)
    group_id = builder.registration_group["id"]

    assert directory.member_names(graph, group_id, "microsoft.graph.group") == {
        nested["id"]: "Finance laptops"
    }
    added = directory.add_group_members(graph, group_id, [other["id"], user["id"]])

    assert [(a.added, a.error) for a in added] == [(True, None), (True, None)]
    assert directory.member_names(graph, group_id, "microsoft.graph.group") == {
        nested["id"]: "Finance laptops",
        other["id"]: "Sales laptops",
    }
    assert directory.member_names(graph, group_id, "microsoft.graph.user") == {user["id"]: "Ada"}
    assert device["id"] in directory.member_names(graph, group_id, "microsoft.graph.device")


def test_directory_lists_come_in_pages_of_999_and_intunes_in_pages_of_1000(builder):
    for _ in range(1001):
        builder.device(member_of=None)
    tenant = SimulatedTenant(builder.as_json())
    graph = client_for(tenant)

    devices = [len(page) for page in directory.device_pages(graph)]
    managed = [len(page) for page in directory.managed_device_pages(graph)]

    assert devices == [999, 2]
    assert managed == [1000, 1]


def test_intunes_page_size_has_its_own_setting(builder, settings):
    for _ in range(5):
        builder.device()
    settings.AUTOPATCH_INTUNE_PAGE_SIZE = 2
    graph = client_for(SimulatedTenant(builder.as_json()))

    assert [len(page) for page in directory.managed_device_pages(graph)] == [2, 2, 1]
    assert [len(page) for page in directory.device_pages(graph)] == [5]


def test_page_size_settings_are_read_strictly(monkeypatch):
    monkeypatch.setenv("AUTOPATCH_INTUNE_PAGE_SIZE", "1001")
    with pytest.raises(ImproperEnvironment, match="from 1 to 1000"):
        envint("AUTOPATCH_INTUNE_PAGE_SIZE", 1000, minimum=1, maximum=1000)
    monkeypatch.setenv("AUTOPATCH_SIMULATED_LATENCY_MS", "-5")
    with pytest.raises(ImproperEnvironment, match="from 0"):
        envint("AUTOPATCH_SIMULATED_LATENCY_MS", 0, minimum=0)


# -- latency --------------------------------------------------------------------------------------


def test_latency_is_applied_per_request_and_concurrent_requests_wait_together(builder, settings):
    builder.device()
    graph = client_for(SimulatedTenant(builder.as_json()))
    graph.get("/v1.0/devices")  # the token, before the clock starts
    # Long enough that a stall of a slow VM does not blur requests in a row with requests at once.
    settings.AUTOPATCH_SIMULATED_LATENCY_MS = 400

    started = time.monotonic()
    for _ in range(3):
        graph.get("/v1.0/devices")
    one_after_another = time.monotonic() - started
    started = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: graph.get("/v1.0/devices"), range(4)))
    at_once = time.monotonic() - started

    assert one_after_another >= 1.2
    assert 0.4 <= at_once < 1.0


def test_batches_can_go_out_at_once(builder, settings):
    for _ in range(60):
        builder.device()
    tenant = SimulatedTenant(builder.as_json())
    graph = client_for(tenant)
    graph.get("/v1.0/devices")
    # A latency long enough that a stall of the machine running the tests does not read as requests in a row
    # (at 200 ms, a CI run on a slow VM took 0.72 s for the three batches sent at once).
    settings.AUTOPATCH_SIMULATED_LATENCY_MS = 1000
    urls = [managed_device_url(m["id"]) for m in builder.managed]

    started = time.monotonic()
    answers = graph.batch(urls, workers=3)
    elapsed = time.monotonic() - started

    assert tenant.requests["POST /beta/$batch"] == 3 and all(a.error is None for a in answers)
    assert 1.0 <= elapsed < 2.0  # one after another, three batches take 3 s


def test_every_graph_route_refuses_a_request_without_a_token_it_issued(builder):
    """Built-in routes and the ones added for delta reads, run states and sign-in alike: Graph answers 401
    before it looks at the route, as no route of the real service answers without a valid token."""
    from autopatch_portal.tenant.simulated import delta, signin

    device = builder.device()
    tenant = SimulatedTenant(builder.as_json())
    delta.install(tenant)
    signin.install(tenant)
    graph = "https://graph.microsoft.com"
    group = builder.registration_group["id"]
    routes = [
        ("GET", "/v1.0/devices"),
        ("GET", f"/v1.0/groups/{group}/members"),
        ("GET", "/v1.0/devices/delta"),
        ("GET", "/v1.0/groups/delta"),
        ("GET", f"/v1.0/groups/{group}/members/microsoft.graph.device"),
        ("GET", "/beta/deviceManagement/deviceHealthScripts/x/deviceRunStates"),
        ("POST", "/beta/deviceManagement/deviceHealthScripts"),
        ("POST", "/v1.0/me/checkMemberGroups"),
        ("GET", f"{MANAGED}/{device['id']}"),
    ]
    issued = tenant.issue_access_token()
    for method, path in routes:
        for headers in ({}, {"Authorization": "Bearer sim-forged"}, {"Authorization": issued}):
            answer = tenant.handle(method, graph + path, headers, b"")
            assert answer.status == 401, (method, path, headers)
            assert b"InvalidAuthenticationToken" in answer.body
    signed = {"Authorization": f"Bearer {issued}"}
    assert tenant.handle("GET", graph + "/v1.0/devices", signed, b"").status == 200


# -- $select ------------------------------------------------------------------------------------------------------


def test_select_answers_with_the_properties_asked_for_and_null_for_those_a_device_lacks(builder):
    # Graph answers every $select property of a device (null when unset); a user has no deviceId to leave null.
    group = builder.group("Nested")
    device = builder.device(member_of=group)
    user = builder.user("Ann", member_of=group)
    tenant = SimulatedTenant(builder.as_json())
    graph = client_for(tenant)

    listed = graph.get("/v1.0/devices", {"$select": "id,displayName,notAProperty"})["value"]
    assert listed == [{"id": device["id"], "displayName": device["displayName"], "notAProperty": None}]
    select = {"$select": "id,deviceId,displayName"}
    as_user = graph.get(f"/v1.0/directoryObjects/{user['id']}", select)
    as_device = graph.get(f"/v1.0/directoryObjects/{device['id']}", select)
    assert as_user == {"@odata.type": "#microsoft.graph.user", "id": user["id"], "displayName": "Ann"}
    assert as_device == {
        "@odata.type": "#microsoft.graph.device",
        "id": device["id"],
        "deviceId": device["deviceId"],
        "displayName": device["displayName"],
    }
    whole = graph.get("/v1.0/devices")["value"][0]
    assert whole["id"] == device["id"] and len(whole) > 3  # without $select, the whole object
