"""Entra ID dynamic membership rules over device properties: parse a rule once, then ask which devices it matches.

Written from Microsoft's "Dynamic membership rules for groups in Microsoft Entra ID"
(https://learn.microsoft.com/entra/identity/users/groups-dynamic-membership, in MicrosoftDocs/entra-docs
`docs/identity/users/groups-dynamic-membership.md`), sections "Supported expression operators", "Supported
values", "Use of Null values", "Operator precedence", "Multi-value properties", "Using the underscore (_)
syntax" and "Rules for devices". What it takes, as that page says:

- A rule is `device.<property> <operator> <value>`, expressions joined by `-and`, `-or` and `-not`, with
  parentheses; precedence from highest: the comparisons, `-not`, `-and`, `-or`. At most 3,072 characters.
- Operators with or without the leading hyphen, in any case: `-eq -ne -startsWith -notStartsWith -endsWith
  -notEndsWith -contains -notContains -match -notMatch -in -notIn`, and `-any`/`-all` over a multi-valued
  property (`devicePhysicalIds`), whose condition names the item `_`: `device.devicePhysicalIds -any
  (_ -startsWith "[ZTDId]")`; without parentheses the condition is one comparison. `-all` over no items holds.
- String values in double quotes (a double quote inside is escaped with a backtick: `` `" ``) or in single
  quotes (a single quote inside is doubled); `true` and `false` for booleans; `null` (or `$null`) for no value,
  with `-eq` and `-ne` only; `"null"` in quotes is the string. Lists for `-in`/`-notIn`: `["a", "b"]`.
- String comparisons and `-match` ignore case; `-match` is a regular expression (.NET's, here the `regex`
  package's, which reads the common syntax and .NET's named groups `(?<name>...)` the same way) found anywhere in
  the value, as `^Da.*` and `.*vid` show there. A pattern that takes longer than MATCH_SECONDS on one value
  (catastrophic backtracking, such as `^(a|aa)+$` on a long run of a's) stops the evaluation with a RuleError instead of a stalled worker.
- A property with no value (null) matches `-eq null`, `-ne "x"` and the negative operators, and no other.

The page says property names are case sensitive, yet writes `device.devicePhysicalIDs` in its own examples (as
Autopilot's documentation does): names are read here in any case. Device properties map to Graph's `device`
resource (api-reference/v1.0/resources/device.md): deviceOSType is `operatingSystem`, deviceOSVersion
`operatingSystemVersion`, deviceTrustType `trustType`, objectId `id`, devicePhysicalIds `physicalIds`,
deviceManufacturer `manufacturer`, deviceModel `model`, deviceManagementAppId `mdmAppId`, extensionAttribute1-15
`extensionAttributes.extensionAttributeN`; the others keep their name. User rules, `memberOf`, `systemLabels`
and "Direct Reports" are not device rules this evaluator takes: they are refused with the reason.
A malformed rule raises RuleError with the (0-based) character position and a message.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import regex

MAX_RULE_LENGTH = 3072
# The seed's Azure Virtual Desktop example ("Windows Autopatch on Azure Virtual Desktop workloads"): a dynamic group
# that targets the session hosts' name prefix and leaves out Windows 10 multi-session hosts.
SEED_HOST_POOL_RULE = (
    '(device.displayName -contains "AP") -and '
    '(device.deviceOSType -ne "Windows 10 Enterprise for Virtual Desktops")'
)
HYPHENS = "-\u2013"  # the page's own examples use an en dash (–eq): rules pasted from it work

STRING, BOOLEAN, COLLECTION = "string", "boolean", "collection"


@dataclass(frozen=True)
class Property:
    name: str  # as Entra spells it
    kind: str
    graph: tuple[str, ...]  # the path to the value in Graph's device object


def _properties() -> dict[str, Property]:
    listed = [
        Property("accountEnabled", BOOLEAN, ("accountEnabled",)),
        Property("isRooted", BOOLEAN, ("isRooted",)),
        Property("deviceCategory", STRING, ("deviceCategory",)),
        Property("deviceId", STRING, ("deviceId",)),
        Property("deviceManagementAppId", STRING, ("mdmAppId",)),
        Property("deviceManufacturer", STRING, ("manufacturer",)),
        Property("deviceModel", STRING, ("model",)),
        Property("displayName", STRING, ("displayName",)),
        Property("deviceOSType", STRING, ("operatingSystem",)),
        Property("deviceOSVersion", STRING, ("operatingSystemVersion",)),
        Property("deviceOwnership", STRING, ("deviceOwnership",)),
        Property("devicePhysicalIds", COLLECTION, ("physicalIds",)),
        Property("deviceTrustType", STRING, ("trustType",)),
        Property("enrollmentProfileName", STRING, ("enrollmentProfileName",)),
        Property("managementType", STRING, ("managementType",)),
        Property("objectId", STRING, ("id",)),
        Property("profileType", STRING, ("profileType",)),
    ]
    listed += [
        Property(f"extensionAttribute{n}", STRING, ("extensionAttributes", f"extensionAttribute{n}"))
        for n in range(1, 16)
    ]
    return {p.name.lower(): p for p in listed}


PROPERTIES = _properties()
# The Graph device properties a rule can read (for a `$select`).
GRAPH_PROPERTIES = tuple(dict.fromkeys(p.graph[0] for p in PROPERTIES.values()))

COMPARISONS = {
    "eq": "-eq",
    "ne": "-ne",
    "startswith": "-startsWith",
    "notstartswith": "-notStartsWith",
    "endswith": "-endsWith",
    "notendswith": "-notEndsWith",
    "contains": "-contains",
    "notcontains": "-notContains",
    "match": "-match",
    "notmatch": "-notMatch",
    "in": "-in",
    "notin": "-notIn",
}
NEGATIVE = {"ne", "notstartswith", "notendswith", "notcontains", "notmatch", "notin"}
QUANTIFIERS = {"any", "all"}
LOGICAL = {"and", "or", "not"}
UNSUPPORTED_OPERATORS = {"le", "ge", "lt", "gt"}


class RuleError(ValueError):
    """A rule that cannot be read or evaluated: `position` is the 0-based character where the trouble is."""

    def __init__(self, message: str, position: int):
        super().__init__(f"{message} (at character {position + 1})")
        self.message = message
        self.position = position


def pointer(rule: str, position: int) -> tuple[str, str]:
    """The line of `rule` that holds `position`, and a line with a caret under it (tabs shown as spaces)."""
    start = rule.rfind("\n", 0, position) + 1
    end = rule.find("\n", position)
    line = rule[start : end if end >= 0 else len(rule)].replace("\t", " ").rstrip("\r")
    return line, " " * (position - start) + "^"


# -- tokens ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    kind: str  # "op" (an operator word), "word", "string", "(", ")", "[", "]", ",", "end"
    text: str  # for "op": the operator's lower-case name without hyphen; for "string": the value
    position: int
    raw: str = ""


WORD = re.compile(r"[A-Za-z0-9_.$]+")
OPERATOR_WORDS = set(COMPARISONS) | QUANTIFIERS | LOGICAL | UNSUPPORTED_OPERATORS


def tokenize(rule: str) -> list[Token]:
    tokens: list[Token] = []
    i, n = 0, len(rule)
    while i < n:
        char = rule[i]
        if char.isspace():
            i += 1
        elif char in "()[],":
            tokens.append(Token(char, char, i, char))
            i += 1
        elif char == '"':
            value, end = _double_quoted(rule, i)
            tokens.append(Token("string", value, i, rule[i:end]))
            i = end
        elif char == "'":
            value, end = _single_quoted(rule, i)
            tokens.append(Token("string", value, i, rule[i:end]))
            i = end
        elif char in HYPHENS:
            match = WORD.match(rule, i + 1)
            if not match or match.group().lower() not in OPERATOR_WORDS:
                raise RuleError(f"'{rule[i : match.end() if match else i + 1]}' is not an operator", i)
            tokens.append(Token("op", match.group().lower(), i, rule[i : match.end()]))
            i = match.end()
        else:
            match = WORD.match(rule, i)
            if not match:
                raise RuleError(f"Unexpected character {char!r}", i)
            word = match.group()
            kind = "op" if word.lower() in OPERATOR_WORDS else "word"
            tokens.append(Token(kind, word.lower() if kind == "op" else word, i, word))
            i = match.end()
    tokens.append(Token("end", "", n))
    return tokens


def _double_quoted(rule: str, start: int) -> tuple[str, int]:
    """A "string": a backtick escapes the next character (`" is a double quote)."""
    out: list[str] = []
    i = start + 1
    while i < len(rule):
        char = rule[i]
        if char == "`":
            if i + 1 >= len(rule):
                break
            out.append(rule[i + 1])
            i += 2
        elif char == '"':
            return "".join(out), i + 1
        else:
            out.append(char)
            i += 1
    raise RuleError("This string has no closing double quote", start)


def _single_quoted(rule: str, start: int) -> tuple[str, int]:
    """A 'string': two single quotes stand for one."""
    out: list[str] = []
    i = start + 1
    while i < len(rule):
        if rule[i] == "'":
            if rule[i + 1 : i + 2] == "'":
                out.append("'")
                i += 2
                continue
            return "".join(out), i + 1
        out.append(rule[i])
        i += 1
    raise RuleError("This string has no closing single quote", start)


# -- the parsed rule --------------------------------------------------------------------------------

Value = str | bool | None | tuple[str, ...]
Predicate = Callable[[Any], bool]


class Rule:
    """A parsed rule; `matches(device)` takes a Graph device object (a dict)."""

    def __init__(self, text: str, predicate: Predicate):
        self.text = text
        self._predicate = predicate

    def matches(self, device: dict[str, Any]) -> bool:
        return self._predicate(device)

    def filter(self, devices: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        return [device for device in devices if self._predicate(device)]


def parse(text: str) -> Rule:
    """Read a rule; RuleError (with the position) when it is not a device rule Entra would take."""
    if not isinstance(text, str):
        raise RuleError("A rule is text", 0)
    if len(text) > MAX_RULE_LENGTH:
        raise RuleError(
            f"The rule is {len(text):,} characters long; Entra takes at most {MAX_RULE_LENGTH:,}",
            MAX_RULE_LENGTH,
        )
    if not text.strip():
        raise RuleError("The rule is empty", 0)
    if text.strip().lower().startswith("direct reports for"):
        raise RuleError('A "Direct Reports" rule selects users, not devices', text.index(text.strip()))
    parser = _Parser(text, tokenize(text))
    predicate = parser.expression()
    token = parser.peek()
    if token.kind != "end":
        raise RuleError(parser.unexpected(token, "-and, -or or the end of the rule"), token.position)
    return Rule(text, predicate)


def _value_of(device: Any, path: tuple[str, ...]) -> Any:
    value = device
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _text(value: Any) -> str | None:
    """A property's value as a string to compare, or None when it has none."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class _Parser:
    def __init__(self, text: str, tokens: list[Token]):
        self.text = text
        self.tokens = tokens
        self.index = 0

    def peek(self) -> Token:
        return self.tokens[self.index]

    def take(self) -> Token:
        token = self.tokens[self.index]
        if token.kind != "end":
            self.index += 1
        return token

    def unexpected(self, token: Token, wanted: str) -> str:
        found = "the end of the rule" if token.kind == "end" else f"'{token.raw}'"
        return f"Expected {wanted}, found {found}"

    # expression := and ( -or and )* ; and := not ( -and not )* ; not := -not not | primary
    def expression(self, item: bool = False) -> Predicate:
        return self.joined("or", any, lambda: self.joined("and", all, lambda: self.negation(item)))

    def joined(
        self, word: str, combine: Callable[[Iterable[bool]], bool], operand: Callable[[], Predicate]
    ) -> Predicate:
        """Operands joined by one logical operator (-or, or -and), which binds them left to right."""
        parts = [operand()]
        while self.peek().kind == "op" and self.peek().text == word:
            self.take()
            parts.append(operand())
        if len(parts) == 1:
            return parts[0]
        return lambda d: combine(p(d) for p in parts)

    def negation(self, item: bool) -> Predicate:
        token = self.peek()
        if token.kind == "op" and token.text == "not":
            self.take()
            inner = self.negation(item)
            return lambda d: not inner(d)
        return self.primary(item)

    def primary(self, item: bool) -> Predicate:
        token = self.peek()
        if token.kind == "(":
            self.take()
            inner = self.expression(item)
            closing = self.take()
            if closing.kind != ")":
                raise RuleError(
                    self.unexpected(
                        closing, f"')' to close the '(' opened at character {token.position + 1}"
                    ),
                    closing.position,
                )
            return inner
        return self.comparison(item)

    def subject(self, item: bool) -> tuple[Token, Property | None]:
        """The left side: `device.<property>`, or `_` (the item) inside -any/-all."""
        token = self.take()
        if token.kind != "word":
            raise RuleError(
                self.unexpected(token, "a device property such as device.displayName"), token.position
            )
        if token.text == "_":
            if not item:
                raise RuleError(
                    "'_' names an item of a multi-valued property, inside -any or -all only", token.position
                )
            return token, None
        if item:
            raise RuleError(
                f"Inside -any or -all the condition is about the item '_', not '{token.text}'", token.position
            )
        owner, dot, name = token.text.partition(".")
        if not dot or owner.lower() != "device":
            if owner.lower() == "user":
                raise RuleError(
                    "This is a user property: a device rule reads device properties only", token.position
                )
            raise RuleError(
                f"Expected a device property such as device.displayName, found '{token.text}'", token.position
            )
        found = PROPERTIES.get(name.lower())
        if found is None:
            if name.lower() in ("memberof", "systemlabels"):
                raise RuleError(
                    f"device.{name} is not supported by the portal's rule evaluator", token.position
                )
            raise RuleError(
                f"'{name}' is not a device property a rule can use", token.position + len(owner) + 1
            )
        return token, found

    def comparison(self, item: bool) -> Predicate:
        subject, prop = self.subject(item)
        op = self.take()
        if op.kind != "op" or op.text in LOGICAL:
            raise RuleError(self.unexpected(op, "an operator such as -eq or -contains"), op.position)
        if op.text in UNSUPPORTED_OPERATORS:
            raise RuleError(f"'{op.raw}' compares dates, which no device property is", op.position)
        if op.text in QUANTIFIERS:
            if prop is None or prop.kind != COLLECTION:
                raise RuleError(
                    f"'{op.raw}' takes a multi-valued property such as device.devicePhysicalIds", op.position
                )
            return self.quantified(prop, op)
        if prop is not None and prop.kind == COLLECTION:
            raise RuleError(
                f"device.{prop.name} holds several values: use -any or -all, e.g. "
                f'device.{prop.name} -any (_ {COMPARISONS[op.text]} "...")',
                op.position,
            )
        if op.text in ("in", "notin"):
            values = self.value_list()
            return self.membership(prop, op, values)
        value_token, value = self.value()
        if prop is not None and prop.kind == BOOLEAN:
            return self.boolean(prop, op, value_token, value)
        if value is None:
            if op.text not in ("eq", "ne"):
                raise RuleError("null is compared with -eq or -ne only", value_token.position)
            path = prop.graph if prop else ()
            is_null = (lambda d: d is None) if prop is None else (lambda d: _value_of(d, path) is None)
            return is_null if op.text == "eq" else (lambda d: not is_null(d))
        if isinstance(value, bool):
            value = "true" if value else "false"
        return self.string_test(prop, op, value_token, str(value))

    def quantified(self, prop: Property, op: Token) -> Predicate:
        if self.peek().kind == "(":
            condition = self.primary(item=True)
        else:
            condition = self.negation(item=True) if self.peek().text == "not" else self.comparison(item=True)
        path = prop.graph
        every = op.text == "all"

        def test(device: Any) -> bool:
            items = _value_of(device, path)
            if not isinstance(items, list):
                items = []
            return (all if every else any)(condition(x) for x in items)

        return test

    def value(self) -> tuple[Token, Value]:
        token = self.take()
        if token.kind == "string":
            return token, token.text
        if token.kind == "word":
            lowered = token.text.lower()
            if lowered in ("null", "$null"):
                return token, None
            if lowered in ("true", "false"):
                return token, lowered == "true"
            if re.fullmatch(r"-?\d+(\.\d+)*", token.text):
                return token, token.text
            raise RuleError(f'Put the value {token.text} in double quotes: "{token.text}"', token.position)
        raise RuleError(self.unexpected(token, 'a value such as "text", true, false or null'), token.position)

    def value_list(self) -> tuple[str, ...]:
        opening = self.take()
        if opening.kind != "[":
            raise RuleError(self.unexpected(opening, "a list of values in [ ]"), opening.position)
        values: list[str] = []
        if self.peek().kind == "]":
            self.take()
            return ()
        while True:
            token, value = self.value()
            if value is None or isinstance(value, bool | tuple):
                raise RuleError("A list holds strings or numbers", token.position)
            values.append(value)
            separator = self.take()
            if separator.kind == "]":
                return tuple(values)
            if separator.kind != ",":
                raise RuleError(self.unexpected(separator, "',' or ']'"), separator.position)

    def membership(self, prop: Property | None, op: Token, values: tuple[str, ...]) -> Predicate:
        if prop is not None and prop.kind == BOOLEAN:
            raise RuleError(f"device.{prop.name} is true or false: use -eq or -ne", op.position)
        wanted = {v.casefold() for v in values}
        read = self.reader(prop)
        negative = op.text == "notin"

        def test(device: Any) -> bool:
            have = read(device)
            found = have is not None and have.casefold() in wanted
            return found != negative

        return test

    def boolean(self, prop: Property, op: Token, token: Token, value: Value) -> Predicate:
        if op.text not in ("eq", "ne"):
            raise RuleError(f"device.{prop.name} is true or false: use -eq or -ne", op.position)
        if isinstance(value, str) and value.lower() in ("true", "false"):
            value = value.lower() == "true"
        if not isinstance(value, bool) and value is not None:
            raise RuleError(f"device.{prop.name} is true or false, not {token.raw}", token.position)
        path, negative = prop.graph, op.text == "ne"

        def test(device: Any) -> bool:
            have = _value_of(device, path)
            return (have is value if isinstance(have, bool) or have is None else False) != negative

        return test

    def reader(self, prop: Property | None) -> Callable[[Any], str | None]:
        if prop is None:
            return _text
        path = prop.graph
        return lambda device: _text(_value_of(device, path))

    def string_test(self, prop: Property | None, op: Token, token: Token, value: str) -> Predicate:
        read = self.reader(prop)
        name = op.text.removeprefix("not") if op.text in NEGATIVE and op.text != "ne" else op.text
        negative = op.text in NEGATIVE
        wanted = value.casefold()
        check: Callable[[str], bool]
        if name in ("eq", "ne"):
            check = lambda have: have.casefold() == wanted  # noqa: E731
        elif name == "startswith":
            check = lambda have: have.casefold().startswith(wanted)  # noqa: E731
        elif name == "endswith":
            check = lambda have: have.casefold().endswith(wanted)  # noqa: E731
        elif name == "contains":
            check = lambda have: wanted in have.casefold()  # noqa: E731
        else:  # match
            pattern = _regex(value, token)
            check = lambda have: _search(pattern, have, token)  # noqa: E731

        def test(device: Any) -> bool:
            have = read(device)
            return (have is not None and check(have)) != negative

        return test


# How long a -match may take on one value: a device's values are short, so only a pattern that backtracks
# catastrophically comes near it, and it would otherwise hold a web or discovery worker for minutes.
MATCH_SECONDS = 0.05


def _regex(value: str, token: Token) -> regex.Pattern[str]:
    try:
        return regex.compile(value, regex.IGNORECASE | regex.VERSION0)
    except (regex.error, OverflowError, RecursionError) as exc:
        raise RuleError(f"{token.raw} is not a regular expression: {exc}", token.position) from exc


def _search(pattern: regex.Pattern[str], have: str, token: Token) -> bool:
    try:
        return pattern.search(have, timeout=MATCH_SECONDS) is not None
    except TimeoutError as exc:
        raise RuleError(
            f"{token.raw} takes too long to match {have[:40]!r} (a pattern that backtracks without end)",
            token.position,
        ) from exc
