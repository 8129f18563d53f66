"""Event times bounded ahead of their arrival: the plan's ``max_future`` and the one pure check
(``streams.scoring.arrival.future_reason``) the worker and the offline readers share."""

from __future__ import annotations

import pytest

from streams.commands.offline import OfflineScorer, Reference, parse_line
from streams.scoring import Event, Invalid, PlanError, load_plan, parse_input
from streams.scoring.arrival import future_reason, unit_hint
from streams.scoring.durations import parse_instant

HOUR = 3_600_000
#: 2026-03-01T00:00:00Z
ARRIVAL = 1_772_323_200_000
Y9999 = 253_370_764_800_000  # 9999-01-01T00:00:00Z


def ms(text: str) -> int:
    at = parse_instant(text)
    assert at is not None
    return at


@pytest.mark.parametrize(
    ("occurred", "expected"),
    [
        # within the bound: accepted, whatever the past
        (ARRIVAL, None),
        (ARRIVAL - 365 * 24 * HOUR, None),
        (ARRIVAL + HOUR, None),  # exactly max_future ahead
        # just over
        (
            ARRIVAL + HOUR + 1,
            "occurred_at 2026-03-01T01:00:00.001Z is 1h 0.001s ahead of its arrival "
            "2026-03-01T00:00:00.000Z; at most 1h ahead is accepted (the plan's max_future)",
        ),
        (
            ARRIVAL + 3 * 24 * HOUR + 4 * HOUR,
            "occurred_at 2026-03-04T04:00:00.000Z is 3d 4h ahead of its arrival "
            "2026-03-01T00:00:00.000Z; at most 1h ahead is accepted (the plan's max_future)",
        ),
        # a placeholder date
        (
            Y9999,
            "occurred_at 9999-01-01T00:00:00.000Z is about 7,978 years ahead of its arrival "
            "2026-03-01T00:00:00.000Z; at most 1h ahead is accepted (the plan's max_future); a "
            "date in the year 9999 is usually a placeholder for 'no date'",
        ),
        # epoch seconds read as milliseconds: January 1970, in the past: not this check's
        (ARRIVAL // 1000, None),
        # epoch microseconds read as milliseconds (past the year 9999)
        (
            ARRIVAL * 1000,
            "occurred_at 1772323200000000 (epoch millis after the year 9999) is about 56,143 "
            "years ahead of its arrival 2026-03-01T00:00:00.000Z; at most 1h ahead is accepted "
            "(the plan's max_future); it looks like microseconds since the epoch, not "
            "milliseconds (as microseconds it is 2026-03-01T00:00:00.000Z); send epoch "
            "milliseconds or ISO-8601",
        ),
        # epoch nanoseconds read as milliseconds, an hour before the arrival
        (
            (ARRIVAL - HOUR) * 1_000_000,
            "occurred_at 1772319600000000000 (epoch millis after the year 9999) is about "
            "56,199,829 years ahead of its arrival 2026-03-01T00:00:00.000Z; at most 1h ahead "
            "is accepted (the plan's max_future); it looks like nanoseconds since the epoch, not "
            "milliseconds (as nanoseconds it is 2026-02-28T23:00:00.000Z); send epoch "
            "milliseconds or ISO-8601",
        ),
    ],
)
def test_future_reason(occurred: int, expected: str | None) -> None:
    assert future_reason(occurred, ARRIVAL, HOUR) == expected


def test_the_reference_is_named_and_the_bound_spelled_as_a_plan_writes_it() -> None:
    assert future_reason(ARRIVAL + 3 * HOUR, ARRIVAL, 2 * HOUR + 30 * 60_000,
                         reference="--until") == (
        "occurred_at 2026-03-01T03:00:00.000Z is 3h ahead of --until 2026-03-01T00:00:00.000Z; "
        "at most 150m ahead is accepted (the plan's max_future)"
    )  # fmt: skip


@pytest.mark.parametrize(
    ("occurred", "arrival", "hint"),
    [
        (ARRIVAL + 2 * HOUR, ARRIVAL, None),  # a wrong clock, not a wrong unit
        (ARRIVAL * 1000, ARRIVAL, "microseconds"),
        (ARRIVAL * 1_000_000, ARRIVAL, "nanoseconds"),
        (ARRIVAL * 1000, ARRIVAL + 20 * 365 * 24 * HOUR, None),  # too far from the arrival
        (Y9999, ARRIVAL, "placeholder"),
    ],
)
def test_unit_hints(occurred: int, arrival: int, hint: str | None) -> None:
    said = unit_hint(occurred, arrival)
    assert (said is None) if hint is None else (said is not None and hint in said)


# ----- the plan's max_future -----------------------------------------------------------------

SCORES = "scores: [{name: s, entity: contact, rules: [{id: v, on: page_visit, points: 1}]}]"


@pytest.mark.parametrize(
    ("head", "max_future_ms"),
    [
        ("", HOUR),  # the default
        ("lateness: 30m", 30 * 60_000),  # never more than lateness
        ("max_future: 10m", 10 * 60_000),
        ("lateness: 30d\nmax_future: 7d", 7 * 24 * HOUR),
    ],
)
def test_max_future_of_a_plan(head: str, max_future_ms: int) -> None:
    plan = load_plan(f"{head}\n{SCORES}", source="p.yaml")
    assert plan.max_future_ms == max_future_ms


@pytest.mark.parametrize(
    ("head", "error"),
    [
        ("max_future: soon", "p.yaml: field 'max_future': must be a duration such as 500ms, 90s, "
         "15m, 24h, 30d or 2w, from 1ms to 1w (got 'soon')"),
        ("max_future: 0s", "p.yaml: field 'max_future': must be a duration such as 500ms, 90s, "
         "15m, 24h, 30d or 2w, from 1ms to 1w (got '0s')"),
        ("lateness: 30d\nmax_future: 8d", "p.yaml: field 'max_future': must be a duration such "
         "as 500ms, 90s, 15m, 24h, 30d or 2w, from 1ms to 1w (got '8d')"),
        ("max_future: 1e1000000", "p.yaml: field 'max_future': must be a duration such as 500ms, "
         "90s, 15m, 24h, 30d or 2w, from 1ms to 1w (got 1E+1000000)"),
        ("lateness: 1h\nmax_future: 2h", "p.yaml: field 'max_future': must not exceed 'lateness' "
         "(2h > 1h): one event that far ahead would make every on-time event of its entity too "
         "late"),
    ],
)  # fmt: skip
def test_max_future_mistakes(head: str, error: str) -> None:
    with pytest.raises(PlanError) as caught:
        load_plan(f"{head}\n{SCORES}", source="p.yaml")
    assert [str(issue) for issue in caught.value.issues] == [error]


def test_max_future_does_not_change_the_version_of_a_plan_without_it() -> None:
    plain = load_plan(SCORES, source="p.yaml")
    assert load_plan(SCORES + "\n", source="q.yaml").version == plain.version
    assert load_plan("max_future: 1h\n" + SCORES, source="p.yaml").version != plain.version


# ----- an event time past 9999 in the parser ---------------------------------------------------


@pytest.mark.parametrize("occurred", [ARRIVAL * 1000, str(ARRIVAL * 1000), ARRIVAL * 1_000_000])
def test_an_integer_time_past_9999_is_an_invalid_item_that_carries_it(occurred: object) -> None:
    parsed = parse_input({"type": "page_visit", "event_id": "e", "occurred_at": occurred,
                          "contact_id": "c", "url": "u"})  # fmt: skip
    assert isinstance(parsed, Invalid)
    assert parsed.occurred_ms == int(str(occurred))
    assert parsed.reason == (
        f"occurred_at {occurred} (epoch millis) is after the year 9999: epoch micro- or "
        "nanoseconds instead of milliseconds?"
    )


@pytest.mark.parametrize("occurred", [-1, "9999-12-31T23:59:60Z", "+10000-01-01T00:00:00Z"])
def test_other_bad_times_are_plain_invalid_items(occurred: object) -> None:
    parsed = parse_input({"type": "page_visit", "event_id": "e", "occurred_at": occurred,
                          "contact_id": "c", "url": "u"})  # fmt: skip
    assert isinstance(parsed, Invalid) and parsed.occurred_ms is None


def test_adjustments_are_bounded_too() -> None:
    parsed = parse_line('{"type": "adjustment", "command_id": "k", "occurred_at": '
                        '"9999-01-01T00:00:00Z", "entity": "contact", "entity_id": "c", '
                        '"score": "s", "op": "add", "points": 5}')  # fmt: skip
    plan = load_plan(SCORES, source="p.yaml")
    assert not isinstance(parsed, Invalid)
    assert Reference(ARRIVAL, "--now").refusal(parsed, plan) is not None


# ----- the repro: one 9999 visit no longer blocks the contact --------------------------------

TWO_RULES = """
scores:
  - name: engagement
    entity: contact
    rules:
      - {id: visit, on: page_visit, points: 1}
      - {id: pricing, on: page_visit, where: {url: {contains: pricing}}, points: 5}
"""


def visit(event_id: str, at: str) -> Event:
    parsed = parse_line(f'{{"type": "page_visit", "event_id": "{event_id}", "contact_id": "c1", '
                        f'"occurred_at": "{at}", "url": "https://x.io/pricing"}}')  # fmt: skip
    assert isinstance(parsed, Event)
    return parsed


def test_the_far_future_visit_is_refused_and_moves_no_watermark() -> None:
    plan = load_plan(TWO_RULES, source="two.yaml")
    scorer = OfflineScorer(plan)
    reference = Reference(ms("2026-03-03T00:00:00Z"), "--until")
    totals = []
    for item in (visit("e1", "2026-03-01T00:00:00Z"), visit("e2", "9999-01-01T00:00:00Z"),
                 visit("e3", "2026-03-02T00:00:00Z")):  # fmt: skip
        if reference.refusal(item, plan) is None:
            scorer.feed(item)
        totals.append(next(iter(scorer.states.values())).scores["engagement"].total)
    assert totals == [6, 6, 12]
    state = next(iter(scorer.states.values()))
    assert state.watermark_ms == ms("2026-03-02T00:00:00Z")
