"""Entra dynamic membership rules over devices: the examples of Microsoft's page, and properties over any input.

The table's rules and expectations come from "Dynamic membership rules for groups in Microsoft Entra ID"
(MicrosoftDocs/entra-docs docs/identity/users/groups-dynamic-membership.md) and the seed's Azure Virtual
Desktop example; the property-based tests check that no text crashes the parser with anything but RuleError,
and that rules built from a grammar mean what an independent reading of their parts says.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autopatch_portal.tenant.membership_rules import PROPERTIES, RuleError, parse

AUTOPILOT = {
    "id": "aaaaaaaa-0000-1111-2222-bbbbbbbbbbbb",
    "deviceId": "d4fe7726-5966-431c-b3b8-cddc8fdb717d",
    "displayName": "David",
    "operatingSystem": "Windows",
    "operatingSystemVersion": "10.0.19045.5608",
    "trustType": "AzureAd",
    "deviceOwnership": "company",
    "managementType": "mdm",
    "enrollmentProfileName": "Autopilot Sales",
    "accountEnabled": True,
    "physicalIds": ["[ZTDId]:4b1c8f", "[OrderID]:179887111881", "[PurchaseOrderId]:76222342342"],
    "extensionAttributes": {"extensionAttribute1": "some string value", "extensionAttribute2": None},
}
PERSONAL = {
    "id": "cccccccc-0000-1111-2222-dddddddddddd",
    "deviceId": "0f0e0d0c-0000-4000-8000-000000000001",
    "displayName": "Rob iPhone",
    "operatingSystem": "iPhone",
    "operatingSystemVersion": "9.1",
    "trustType": "Workplace",
    "deviceOwnership": "personal",
    "managementType": "MDM",
    "enrollmentProfileName": None,
    "accountEnabled": False,
    "physicalIds": [],
}
SESSION_HOST = {
    "id": "eeeeeeee-0000-1111-2222-ffffffffffff",
    "deviceId": "0f0e0d0c-0000-4000-8000-000000000002",
    "displayName": "AVD-AP-MS-0",
    "operatingSystem": "Windows 10 Enterprise for Virtual Desktops",
    "operatingSystemVersion": "10.0.19045.5608",
    "trustType": "AzureAd",
    "accountEnabled": True,
    "physicalIds": ["[AzureResourceId]:/subscriptions/x"],
}
DEVICES = {"autopilot": AUTOPILOT, "personal": PERSONAL, "session host": SESSION_HOST}

# (rule, the devices it matches), written from the page's examples and notes.
TABLE = [
    ("device.objectId -ne null", {"autopilot", "personal", "session host"}),  # the "All devices" rule
    ('device.displayName -eq "Rob iPhone"', {"personal"}),
    ('device.displayName -eq "rob IPHONE"', {"personal"}),  # string operations ignore case
    ('(device.deviceOSType -eq "iPad") -or (device.deviceOSType -eq "iPhone")', {"personal"}),
    ('device.deviceOSType -eq "Windows"', {"autopilot"}),
    ('device.deviceOSVersion -startsWith "10.0.1"', {"autopilot", "session host"}),
    ('device.deviceOSVersion -eq "9.1"', {"personal"}),
    ('device.deviceOwnership -eq "Company"', {"autopilot"}),  # Graph says company, Entra's rule Company
    ('device.deviceTrustType -eq "AzureAD"', {"autopilot", "session host"}),
    ('device.deviceTrustType -eq "Workplace"', {"personal"}),
    ('device.managementType -eq "MDM"', {"autopilot", "personal"}),
    ('device.enrollmentProfileName -eq "Autopilot Sales"', {"autopilot"}),
    ("device.accountEnabled -eq true", {"autopilot", "session host"}),
    ("device.accountEnabled -eq false", {"personal"}),
    ('device.deviceId -eq "d4fe7726-5966-431c-b3b8-cddc8fdb717d"', {"autopilot"}),
    ('device.objectId -eq "aaaaaaaa-0000-1111-2222-bbbbbbbbbbbb"', {"autopilot"}),
    ('device.devicePhysicalIDs -any _ -startsWith "[ZTDId]"', {"autopilot"}),
    ('(device.devicePhysicalIDs -any (_ -contains "[ZTDId]"))', {"autopilot"}),
    ('device.devicePhysicalIds -any _ -eq "[OrderID]:179887111881"', {"autopilot"}),
    ('device.devicePhysicalIds -any (_ -eq "[PurchaseOrderId]:76222342342")', {"autopilot"}),
    ('device.devicePhysicalIds -all (_ -startsWith "[")', {"autopilot", "personal", "session host"}),
    ('device.devicePhysicalIds -all (_ -startsWith "[ZTDId]")', {"personal"}),  # -all holds over no items
    ('device.extensionAttribute1 -eq "some string value"', {"autopilot"}),
    ("device.extensionAttribute2 -eq null", {"autopilot", "personal", "session host"}),
    ('device.displayName -match "^Da.*"', {"autopilot"}),
    ('device.displayName -match ".*vid"', {"autopilot"}),
    ('device.displayName -match "^da"', {"autopilot"}),  # regex ignores case
    ('device.displayName -notMatch "^Da.*"', {"personal", "session host"}),
    ('device.deviceOSType -in ["iPad","iPhone"]', {"personal"}),
    ("device.deviceOSType -notIn ['iPad','iPhone']", {"autopilot", "session host"}),
    ("device.enrollmentProfileName -eq null", {"personal", "session host"}),
    ("device.enrollmentProfileName -ne null", {"autopilot"}),
    ('device.enrollmentProfileName -eq "null"', set()),  # "null" in quotes is the string
    ('device.enrollmentProfileName -ne "Autopilot Sales"', {"personal", "session host"}),
    ('device.enrollmentProfileName -startsWith "Auto"', {"autopilot"}),
    ('device.enrollmentProfileName -notStartsWith "Auto"', {"personal", "session host"}),
    ('device.displayName -endsWith "iphone"', {"personal"}),
    ('(device.deviceOSType -eq "Windows") -and -not (device.displayName -startsWith "Rob")', {"autopilot"}),
    # Precedence: -and before -or, parentheses when that is not what is meant.
    (
        'device.deviceOSType -eq "iPhone" -or device.deviceOSType -eq "Windows" -and device.accountEnabled -eq false',
        {"personal"},
    ),
    (
        '(device.deviceOSType -eq "iPhone" -or device.deviceOSType -eq "Windows") -and device.accountEnabled -eq true',
        {"autopilot"},
    ),
    # Operators with or without the hyphen, any case, and the page's en dash.
    ('device.displayName eq "David" or device.displayName EQ "Rob iPhone"', {"autopilot", "personal"}),
    ('device.displayName –eq "David" –and device.accountEnabled –eq true', {"autopilot"}),
    # The seed's Azure Virtual Desktop rule: names containing "AP", not the Windows 10 multi-session OS.
    (
        '(device.displayName -contains "AP") -and (device.deviceOSType -ne "Windows 10 Enterprise for Virtual Desktops")',
        set(),
    ),
    ('(device.displayName -contains "AP")', {"session host"}),
]


@pytest.mark.parametrize(("rule", "expected"), TABLE)
def test_rules_from_entras_page_match_what_it_says(rule, expected):
    parsed = parse(rule)

    assert {name for name, device in DEVICES.items() if parsed.matches(device)} == expected


def test_quotes_are_escaped_as_entra_says():
    quoted = {"displayName": 'The "Sales" laptop', "deviceCategory": "O'Brien"}

    assert parse('device.displayName -eq "The `"Sales`" laptop"').matches(quoted)
    assert parse("device.deviceCategory -eq 'O''Brien'").matches(quoted)
    assert parse('device.deviceCategory -eq "O\'Brien"').matches(quoted)


@pytest.mark.parametrize(
    ("rule", "position", "message"),
    [
        ('device.displayName -eq "Sales', 23, "no closing double quote"),
        ('(device.displayName -eq "Sales"', 31, "')' to close"),
        ('device.displayName -equals "Sales"', 19, "not an operator"),
        ('device.colour -eq "red"', 7, "not a device property"),
        ('user.department -eq "Sales"', 0, "user property"),
        ('device.displayName -eq "a" -and', 31, "a device property"),
        ("device.devicePhysicalIds -eq 'x'", 25, "-any or -all"),
        ('device.displayName -any (_ -eq "a")', 19, "multi-valued"),
        ("device.displayName -contains null", 29, "null is compared with -eq or -ne only"),
        ('device.displayName -match "(unclosed"', 26, "not a regular expression"),
        ("device.accountEnabled -contains true", 22, "true or false"),
        ('_ -eq "a"', 0, "inside -any or -all"),
        ("device.deviceOSType -eq Windows", 24, 'double quotes: "Windows"'),
        ("device.deviceOSType -in ('a')", 24, "a list of values"),
        ("", 0, "empty"),
        ('Direct Reports for "aaaaaaaa-0000-1111-2222-bbbbbbbbbbbb"', 0, "selects users"),
        ('device.displayName -eq "a" device.displayName', 27, "-and, -or or the end"),
    ],
)
def test_a_malformed_rule_says_where_and_why(rule, position, message):
    with pytest.raises(RuleError) as caught:
        parse(rule)

    assert caught.value.position == position
    assert message in caught.value.message
    assert f"at character {position + 1}" in str(caught.value)


def test_a_rule_over_entras_length_limit_is_refused():
    rule = " -or ".join(['device.displayName -eq "x"'] * 120)
    assert len(rule) > 3072

    with pytest.raises(RuleError, match="at most 3,072"):
        parse(rule)


# -- property-based --------------------------------------------------------------------------------

ALPHABET = st.sampled_from(list("device.displayName-eqnotand or()[]\"'`_,$null truefalse0123 AP\u2013\t"))
strings_of_rule_bits = st.lists(
    st.one_of(
        st.sampled_from(
            [
                "device.displayName",
                "device.devicePhysicalIds",
                "device.accountEnabled",
                "-eq",
                "-ne",
                "-contains",
                "-match",
                "-in",
                "-any",
                "-all",
                "-and",
                "-or",
                "-not",
                "(",
                ")",
                "[",
                "]",
                ",",
                "_",
                "null",
                "true",
                '"AP"',
                "'x'",
                '"(["',
                "`",
            ]
        ),
        st.text(ALPHABET, max_size=4),
    ),
    max_size=14,
).map(" ".join)
device_values = st.one_of(st.none(), st.text(max_size=8), st.booleans(), st.integers())
random_devices = st.fixed_dictionaries(
    {},
    optional={
        "displayName": device_values,
        "accountEnabled": device_values,
        "physicalIds": st.one_of(st.none(), st.lists(device_values, max_size=3), st.text(max_size=3)),
        "extensionAttributes": st.one_of(
            st.none(), st.text(max_size=3), st.dictionaries(st.text(), device_values)
        ),
    },
)


def evaluate_or_refuse(rule: str, device: dict) -> None:
    try:
        parsed = parse(rule)
    except RuleError as exc:
        assert 0 <= exc.position <= max(len(rule), 3072)
        return
    try:
        assert parsed.matches(device) in (True, False)
    except RuleError as exc:  # the one refusal at evaluation: a -match that takes too long on this device
        assert "takes too long to match" in exc.message


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=60), random_devices)
def test_no_text_crashes_the_parser(rule, device):
    evaluate_or_refuse(rule, device)


@settings(max_examples=600, deadline=None)
@given(strings_of_rule_bits, random_devices)
def test_no_sequence_of_rule_words_crashes_the_parser(rule, device):
    evaluate_or_refuse(rule, device)


# Rules built from the grammar, each with its meaning computed here, apart from the module.
STRING_PROPERTIES = ["displayName", "deviceOSType", "deviceOwnership", "enrollmentProfileName"]
GRAPH_NAME = {name: PROPERTIES[name.lower()].graph[0] for name in STRING_PROPERTIES}
WORDS = ["AP", "ap-host", "Windows", "company", 'say "hi"', "O'Neil", "10.0", ""]


def spelled(operator: str, draw) -> str:
    """An operator as a person might write it: with or without the hyphen, in any case."""
    text = draw(st.sampled_from([operator, operator.lower(), operator.upper()]))
    return draw(st.sampled_from(["-", ""])) + text


def quoted(value: str, draw) -> str:
    if draw(st.booleans()):
        return '"' + value.replace("`", "``").replace('"', '`"') + '"'
    return "'" + value.replace("'", "''") + "'"


def meaning(op: str, have, value) -> bool:
    if value is None:
        return (have is None) == (op == "eq")
    if op in ("in", "notIn"):
        found = have is not None and have.casefold() in {v.casefold() for v in value}
        return found if op == "in" else not found
    positive = (op.removeprefix("not") if op.startswith("not") else op).lower()
    tests = {
        "eq": lambda h: h.casefold() == value.casefold(),
        "ne": lambda h: h.casefold() == value.casefold(),
        "startswith": lambda h: h.casefold().startswith(value.casefold()),
        "contains": lambda h: value.casefold() in h.casefold(),
        "match": lambda h: re.search(re.escape(value), h, re.IGNORECASE) is not None,
    }
    result = have is not None and tests[positive](have)
    return not result if op == "ne" or op.startswith("not") else result


@st.composite
def comparisons(draw):
    prop = draw(st.sampled_from(STRING_PROPERTIES))
    op = draw(
        st.sampled_from(
            ["eq", "ne", "startsWith", "notStartsWith", "contains", "notContains", "match", "in", "notIn"]
        )
    )
    if op in ("in", "notIn"):
        value = tuple(draw(st.lists(st.sampled_from(WORDS), max_size=3)))
        text = "[" + ", ".join(quoted(v, draw) for v in value) + "]"
    elif op in ("eq", "ne") and draw(st.integers(0, 4)) == 0:
        value, text = None, draw(st.sampled_from(["null", "NULL", "$null"]))
    else:
        value = draw(st.sampled_from(WORDS))
        text = quoted(re.escape(value) if op == "match" else value, draw)
    name = draw(st.sampled_from([prop, prop.lower(), prop.upper()]))
    rule = f"device.{name} {spelled(op, draw)} {text}"
    return rule, lambda device: meaning(op, device.get(GRAPH_NAME[prop]), value)


@st.composite
def physical_id_conditions(draw):
    prefix = draw(st.sampled_from(["[ZTDId]", "[OrderID]:", "[AzureResourceId]", "x"]))
    quantifier = draw(st.sampled_from(["any", "all"]))
    body = f"_ {spelled('startsWith', draw)} {quoted(prefix, draw)}"
    if draw(st.booleans()):
        body = f"({body})"
    rule = f"device.devicePhysicalIds {spelled(quantifier, draw)} {body}"

    def test(device):
        items = device.get("physicalIds") or []
        found = [item.casefold().startswith(prefix.casefold()) for item in items]
        return any(found) if quantifier == "any" else all(found)

    return rule, test


def combined(children):
    @st.composite
    def build(draw):
        kind = draw(st.sampled_from(["and", "or", "not"]))
        left_rule, left = draw(children)
        if kind == "not":
            return f"{spelled('not', draw)} ({left_rule})", lambda d: not left(d)
        right_rule, right = draw(children)
        rule = f"({left_rule}) {spelled(kind, draw)} ({right_rule})"
        if kind == "and":
            return rule, lambda d: left(d) and right(d)
        return rule, lambda d: left(d) or right(d)

    return build()


rules_with_meaning = st.recursive(st.one_of(comparisons(), physical_id_conditions()), combined, max_leaves=6)
grammar_devices = st.fixed_dictionaries(
    {},
    optional={
        **{
            GRAPH_NAME[p]: st.one_of(st.none(), st.sampled_from(WORDS), st.text(max_size=6))
            for p in STRING_PROPERTIES
        },
        "physicalIds": st.lists(
            st.sampled_from(["[ZTDId]:1", "[OrderID]:7", "[azureresourceid]:/s", "xyz"]), max_size=3
        ),
    },
)


@settings(max_examples=500, deadline=None)
@given(rules_with_meaning, grammar_devices)
def test_rules_built_from_the_grammar_mean_what_their_parts_say(rule_and_meaning, device):
    rule, expected = rule_and_meaning

    assert parse(rule).matches(device) == expected(device), rule


def test_discovery_reads_every_device_property_a_rule_can_use():
    from autopatch_portal.tenant.directory import DEVICE_SELECT
    from autopatch_portal.tenant.membership_rules import GRAPH_PROPERTIES

    assert set(GRAPH_PROPERTIES) <= set(DEVICE_SELECT.split(","))


def test_a_pattern_that_backtracks_without_end_is_stopped_with_a_rule_error():
    # (a|aa)+$ against many a's and one b takes exponential time in a backtracking engine: hours, not a page view.
    parsed = parse('device.displayName -match "^(a|aa)+$"')
    with pytest.raises(RuleError, match="takes too long to match") as error:
        parsed.matches({"displayName": "a" * 60 + "b"})
    assert error.value.position == len("device.displayName -match ")
    assert parsed.matches({"displayName": "aaa"}) and not parsed.matches({"displayName": "aab"})


def test_dotnet_named_groups_are_read():
    assert parse('device.displayName -match "^(?<site>[A-Z]{3})-LT"').matches({"displayName": "fin-lt-001"})
