"""Bounded parsing, clear messages: values rendered plainly, JSON within its bounds, numbers out
of range named with their field and range, YAML errors naming the file, one plan size limit."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from streams.commands.offline import parse_line
from streams.engine.tenants import MAX_PLAN_BYTES as TOPIC_MAX_PLAN_BYTES
from streams.scoring import EntityKey, Invalid, PlanError, apply, load_plan, parse_input
from streams.scoring.plan.reader import MAX_PLAN_BYTES, read_yaml
from streams.scoring.shown import shown
from streams.wire import jsonlimits

# ----- values for people ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "null"),
        (True, "true"),
        (False, "false"),
        ("it's", "'it's'"),
        ("two\nlines\x07", "'two\\nlines\\x07'"),
        (12, "12"),
        (Decimal("1E+30"), "1E+30"),
        (Decimal("1.50"), "1.50"),
        (Decimal("NaN"), "NaN"),
        (Decimal("-Infinity"), "-Infinity"),
        (Decimal("1" * 50), "a number of 50 digits"),
        pytest.param(10**5000, "an integer of about 5000 digits", id="huge-integer"),
        (float("nan"), "NaN"),
        (float("inf"), "Infinity"),
        (0.5, "0.5"),
        ([Decimal("1.5"), "x", None], "[1.5, 'x', null]"),
        ({"a": [1, 2], "b": True}, "{a: [1, 2], b: true}"),
        (b"\x00\x01", "2 bytes of binary data"),
        (object(), "a value of type object"),
        ("x" * 100, "'" + "x" * 76 + "..."),
    ],
)
def test_shown(value: object, text: str) -> None:
    assert shown(value) == text


# ----- JSON within bounds ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "deeper"),
    [
        (b"[" * 64 + b"]" * 64, False),
        (b"[" * 65 + b"]" * 65, True),
        ('{"a": "' + "[" * 1000 + '"}', False),  # brackets inside a string do not nest
        (b'{"a": "\\"' + b"[" * 1000 + b'"}', False),  # nor after an escaped quote
        (b"[]" * 10_000, False),  # wide, not deep
        (b"[" * 100_000, True),
        (b'"' + b"[" * 100, False),  # a string running to the end
    ],
)
def test_depth(data: bytes | str, deeper: bool) -> None:
    assert jsonlimits.depth_exceeds(data) is deeper


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"[" * 1000 + b"]" * 1000, "lists and objects nested deeper than 64 levels"),
        (b'{"a": 1' + b"0" * 5000 + b"}", "an integer of more than 4,300 digits"),
        (b'"' + b"x" * (1024 * 1024) + b'"', "1,048,578 bytes: larger than 1,048,576"),
    ],
)
def test_json_past_its_bounds(data: bytes, error: str) -> None:
    with pytest.raises(jsonlimits.JsonLimitError) as caught:
        jsonlimits.loads(data)
    assert str(caught.value) == error


def test_json_numbers_stay_exact_and_nan_stays_a_number() -> None:
    got = jsonlimits.loads(b'{"a": 0.1, "b": 1e1000000, "c": NaN, "d": -Infinity, "e": 7}')
    assert got.pop("c").is_nan()
    assert got == {"a": Decimal("0.1"), "b": Decimal("1E+1000000"), "d": Decimal("-Infinity"),
                   "e": 7}  # fmt: skip


# ----- numbers in events -----------------------------------------------------------------------

BASE = '"event_id": "e", "occurred_at": "2026-03-01T00:00:00Z", "contact_id": "c"'
RANGE = "greater than -10^18 and less than 10^18"


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ('"type": "purchase", "order_id": "o", "currency": "EUR", "amount": 1e1000000',
         f"amount must be a decimal number {RANGE} (got 1E+1000000)"),
        ('"type": "purchase", "order_id": "o", "currency": "EUR", "amount": NaN',
         f"amount must be a decimal number {RANGE} (got NaN)"),
        ('"type": "purchase", "order_id": "o", "currency": "EUR", "amount": -Infinity',
         f"amount must be a decimal number {RANGE} (got -Infinity)"),
        ('"type": "purchase", "order_id": "o", "currency": "EUR", "amount": "1e30"',
         f"amount must be a decimal number {RANGE} (got '1e30')"),
        ('"type": "deal.stage_changed", "deal_id": "d", "pipeline": "p", "to_stage": "x", '
         '"value": 1e19', f"value must be a decimal number {RANGE} (got 1E+19)"),
        ('"type": "contact.updated", "attributes": {"employees": 1e1000000}',
         f"attribute 'employees' must be a number {RANGE} (got 1E+1000000)"),
        ('"type": "contact.updated", "attributes": {"x": [1]}',
         "attribute 'x' must be a string, number, boolean or null"),
        ('"type": "page_visit", "url": "u", "title": ["a"]',
         "title must be a non-empty string (got ['a'])"),
    ],
)  # fmt: skip
def test_numbers_of_events(fields: str, reason: str) -> None:
    parsed = parse_line("{" + BASE + ", " + fields + "}")
    assert isinstance(parsed, Invalid)
    assert parsed.reason == reason


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"points": 10**10}, "points must be an integer from -1,000,000,000 to 1,000,000,000 "
         "(got 10000000000)"),
        ({"points": Decimal("1E+30")}, "points must be an integer from -1,000,000,000 to "
         "1,000,000,000 (got 1E+30)"),
        ({"expires_after": 10**20}, "expires_after must be a duration like 30d, or millis from 1 "
         "to 3,153,600,000,000 (got 100000000000000000000)"),
    ],
)  # fmt: skip
def test_numbers_of_adjustments(record: dict[str, Any], reason: str) -> None:
    command = {"type": "adjustment", "command_id": "k", "occurred_at": 1, "entity": "contact",
               "entity_id": "c", "score": "s", "op": "add", "points": 5, **record}  # fmt: skip
    parsed = parse_input(command)
    assert isinstance(parsed, Invalid) and parsed.reason == reason


def test_a_decimal_signal_never_shows_as_a_class() -> None:
    class Exploding(dict[str, Any]):
        def get(self, key: str, default: Any = None) -> Any:
            if key == "type":
                return "page_visit"
            raise ArithmeticError(f"[{Decimal}]")

    parsed = parse_input(Exploding())
    assert isinstance(parsed, Invalid)
    assert parsed.reason == "malformed record (ArithmeticError)"
    assert "<class" not in parsed.reason


def test_a_huge_numeric_text_attribute_weighs_nothing_instead_of_overflowing() -> None:
    plan = load_plan("""
scores:
  - name: fit
    entity: contact
    rules:
      - {id: size, while: {attributes.employees: {exists: true}},
         points: {field: attributes.employees, multiply: 10}}
""", source="p.yaml")  # fmt: skip
    for text, points in (("1e999999", 0), ("12", 120)):
        item = parse_input({"type": "contact.updated", "event_id": text, "occurred_at": 1,
                            "contact_id": "c", "attributes": {"employees": text}})  # fmt: skip
        assert not isinstance(item, Invalid)
        outcome = apply(None, EntityKey(None, "contact", "c"), item, plan, now_ms=1)
        assert outcome.state.scores["fit"].total == points


# ----- numbers in plans ------------------------------------------------------------------------

MAX_P = "from -1,000,000,000 to 1,000,000,000"
MAX_L = "from -1,000,000,000,000 to 1,000,000,000,000"
DURATION = "must be a duration such as 500ms, 90s, 15m, 24h, 30d or 2w, from 1ms to 36500d"


@pytest.mark.parametrize(
    ("rule", "score_head", "error"),
    [
        ("points: {field: amount, multiply: 1e1000000}", "",
         f"rule 'r', field 'points.multiply': must be a number {MAX_P} (got 1E+1000000)"),
        ("points: {field: amount, multiply: 1e30}", "",
         f"rule 'r', field 'points.multiply': must be a number {MAX_P} (got 1E+30)"),
        ("points: {field: amount, add: -1e10}", "",
         f"rule 'r', field 'points.add': must be a number {MAX_P} (got -1E+10)"),
        ("points: {field: amount, min: 1.5}", "",
         f"rule 'r', field 'points.min': must be an integer {MAX_P} (got 1.5)"),
        ("points: {field: amount, max: 1e1000000}", "",
         f"rule 'r', field 'points.max': must be an integer {MAX_P} (got 1E+1000000)"),
        ("points: 1e30", "",
         f"rule 'r', field 'points': must be an integer {MAX_P}, or a mapping {{field, multiply, "
         "add, min, max} (got 1E+30)"),
        ("points: 1, cap: {max: 1e1000000, per: 1d}", "",
         "rule 'r', field 'cap.max': must be a positive integer of at most 10,000 "
         "(got 1E+1000000)"),
        ("points: 1, expires_after: 100000w", "",
         f"rule 'r', field 'expires_after': {DURATION} (got '100000w')"),
        ("points: 1", "limits: {min: 1e1000000}",
         f"field 'limits.min': must be an integer {MAX_L} (got 1E+1000000)"),
        ("points: 1", "categories: {fit: {max: -1e13}}",
         f"field 'categories.fit.max': must be an integer {MAX_L} (got -1E+13)"),
        ("points: 1", "thresholds: [{name: a, at: 1e1000000}]",
         f"field 'thresholds[0].at': must be an integer {MAX_L} (got 1E+1000000)"),
    ],
)  # fmt: skip
def test_numbers_of_plans(rule: str, score_head: str, error: str) -> None:
    text = (f"scores:\n  - name: s\n    entity: contact\n    {score_head}\n"
            f"    rules:\n      - {{id: r, on: purchase, {rule}}}\n")  # fmt: skip
    with pytest.raises(PlanError) as caught:
        load_plan(text, source="p.yaml")
    assert [str(i) for i in caught.value.issues] == [f"p.yaml: score 's', {error}"]


@pytest.mark.parametrize("name", ["lateness", "dedup_horizon"])
def test_durations_of_plans(name: str) -> None:
    with pytest.raises(PlanError) as caught:
        load_plan(f"{name}: 1e1000000\nscores: [{{name: s, entity: contact}}]", source="p.yaml")
    assert [str(i) for i in caught.value.issues] == [
        f"p.yaml: field '{name}': {DURATION} (got 1E+1000000)"
    ]


def test_no_repr_in_any_message_of_a_plan_full_of_mistakes() -> None:
    text = """
version: [1.5]
lateness: 1.5
scores:
  - name: s
    entity: contact
    timezone: [1.5]
    categories: {fit: {max: 1.5}}
    quiet_hours: {policy: skip, windows: [{days: [1.5], from: 1.5, to: "it's"}]}
    rules:
      - {id: r, on: [1.5, true, null], points: {field: [1.5], multiply: [1.5]}, category: 1.5}
"""
    with pytest.raises(PlanError) as caught:
        load_plan(text, source="p.yaml")
    said = str(caught.value)
    for leak in ("Decimal(", "<class", "True", "None", '"it'):
        assert leak not in said, said
    assert "(got [1.5])" in said and "unknown day 1.5" in said


def test_reprs_from_any_validator_are_rendered_plainly() -> None:
    """Conditions and matrices still format some operands with ``!r``; every plan message goes
    through one reporting context, which writes decimals and types as written."""
    text = """
scores:
  - name: s
    entity: contact
    tiers: [{name: a, below: 10}, {name: b}]
    rules:
      - {id: r, on: purchase, where: {amount: {eq: [1.5]}}, points: 1}
matrices: [{name: m, entity: contact, rows: [1.5], cols: s, labels: [[x]]}]
"""
    with pytest.raises(PlanError) as caught:
        load_plan(text, source="p.yaml")
    assert [str(i) for i in caught.value.issues][:2] == [
        "p.yaml: score 's', rule 'r', field 'where.amount.eq': must be a string, number or "
        "boolean (got [1.5])",
        "p.yaml: field 'matrices[0].rows': must name a score of the plan (got [1.5])",
    ]


# ----- YAML errors and the plan's size --------------------------------------------------------


def test_yaml_errors_name_the_file() -> None:
    with pytest.raises(PlanError) as caught:
        load_plan("scores: [", source="plans/acme.yaml")
    assert str(caught.value) == (
        "plans/acme.yaml: not valid YAML: while parsing a flow node expected the node content, "
        "but found '<stream end>' in \"plans/acme.yaml\", line 1, column 10: scores: [ ^"
    )


def test_one_plan_size_limit_everywhere() -> None:
    assert MAX_PLAN_BYTES == TOPIC_MAX_PLAN_BYTES == 512 * 1024
    filler = "#" + "x" * 99 + "\n"
    head = "scores: [{name: s, entity: contact}]\n"
    fits = head + filler * ((MAX_PLAN_BYTES - len(head)) // len(filler))
    assert read_yaml(fits)[1] == []
    too_big = fits + "#" * (MAX_PLAN_BYTES - len(fits) + 1)
    assert read_yaml(too_big)[1] == [
        "the plan is 524,289 bytes; at most 524,288 (512 KiB) are accepted"
    ]
    # bytes, not characters: two-byte letters count twice
    wide = head + "#" + "ł" * (MAX_PLAN_BYTES // 2)
    assert read_yaml(wide)[1] == [
        f"the plan is {len(wide.encode()):,} bytes; at most 524,288 (512 KiB) are accepted"
    ]
