"""Durations, instants, and quiet hours across midnight and daylight-saving changes."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.scoring.durations import format_duration, format_instant, parse_duration, parse_instant
from streams.scoring.plan.spec import QuietHours, QuietWindow
from streams.scoring.quiet_hours import _quiet_until, quiet_until


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("500ms", 500),  # milliseconds
        ("90s", 90_000),  # seconds
        ("15m", 900_000),  # minutes
        ("24h", 86_400_000),  # hours
        ("30d", 2_592_000_000),  # days
        ("2w", 1_209_600_000),  # weeks
        ("1h30m", 5_400_000),  # parts concatenate
        ("0s", None),  # zero is not a duration
        ("30 d", None),  # no spaces
        ("1y", None),  # no years (calendar-dependent)
        ("-1d", None),  # no negatives
        (30, None),  # a bare number has no unit
        ("", None),  # empty
    ],
)
def test_parse_duration(text: object, ms: int | None) -> None:
    assert parse_duration(text) == ms


@pytest.mark.parametrize(("ms", "text"), [(500, "500ms"), (90_000, "90s"), (86_400_000, "1d")])
def test_format_duration(ms: int, text: str) -> None:
    assert format_duration(ms) == text


@pytest.mark.parametrize(
    ("value", "ms"),
    [
        ("2024-05-06T10:00:00Z", 1_714_989_600_000),  # UTC with Z
        ("2024-05-06T12:00:00+02:00", 1_714_989_600_000),  # offset
        ("2024-05-06T10:00:00.123Z", 1_714_989_600_123),  # millis
        (1_714_989_600_000, 1_714_989_600_000),  # epoch millis
        ("1714989600000", 1_714_989_600_000),  # epoch millis as text
        ("2024-05-06T10:00:00", None),  # naive: rejected
        ("2024-05-06", None),  # a date is not an instant
        (-1, None),  # before the epoch
        (True, None),  # bool is not an int here
        (1.5, None),  # floats are not accepted
    ],
)
def test_parse_instant(value: object, ms: int | None) -> None:
    assert parse_instant(value) == ms


def test_format_instant() -> None:
    assert format_instant(1_714_989_600_123) == "2024-05-06T10:00:00.123Z"


WARSAW = ZoneInfo("Europe/Warsaw")
NIGHTS = QuietHours("skip", (QuietWindow(frozenset(range(7)), 22 * 60, 7 * 60),))
EARLY = QuietHours("skip", (QuietWindow(frozenset(range(7)), 60, 150),))  # 01:00-02:30


def at(text: str) -> int:
    ms = parse_instant(text)
    assert ms is not None
    return ms


@pytest.mark.parametrize(
    ("quiet", "instant", "end"),
    [
        # winter (CET): 23:00 local ends 07:00 local next day
        (NIGHTS, "2024-01-10T23:00:00+01:00", "2024-01-11T07:00:00+01:00"),
        # the night the clocks go forward (31 March 2024): the window lasts an hour less
        (NIGHTS, "2024-03-30T23:00:00+01:00", "2024-03-31T07:00:00+02:00"),
        # the night the clocks go back (27 October 2024)
        (NIGHTS, "2024-10-26T23:00:00+02:00", "2024-10-27T07:00:00+01:00"),
        # not quiet at noon
        (NIGHTS, "2024-01-10T12:00:00+01:00", None),
        # an end inside the spring-forward gap (02:30 does not exist): fold=0 gives 03:30 CEST
        (EARLY, "2024-03-31T01:30:00+01:00", "2024-03-31T03:30:00+02:00"),
        # an ambiguous end (02:30 happens twice on 27 October): first occurrence
        (EARLY, "2024-10-27T01:30:00+02:00", "2024-10-27T02:30:00+02:00"),
        # an event in the repeated hour after the first 02:30: the second 02:30
        (EARLY, "2024-10-27T02:15:00+01:00", "2024-10-27T02:30:00+01:00"),
    ],
)
def test_quiet_until_dst(quiet: QuietHours, instant: str, end: str | None) -> None:
    assert quiet_until(quiet, WARSAW, at(instant)) == (None if end is None else at(end))


def test_adjacent_windows_chain() -> None:
    quiet = QuietHours(
        "defer",
        (
            QuietWindow(frozenset({4}), 18 * 60, 1440),  # Friday 18:00-24:00
            QuietWindow(frozenset({5, 6}), 0, 1440),  # all Saturday and Sunday
        ),
    )
    utc = ZoneInfo("UTC")
    assert quiet_until(quiet, utc, at("2024-05-10T19:00:00Z")) == at("2024-05-13T00:00:00Z")


ZONES = ("UTC", "Europe/Warsaw", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata")
windows = st.builds(
    QuietWindow,
    st.frozensets(st.integers(0, 6), min_size=1),
    st.integers(0, 1439),
    st.integers(1, 1440),
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(windows, min_size=1, max_size=3),
    st.sampled_from(ZONES),
    # around the 2024 DST changes of the zones above, in order with small steps and jumps back
    st.integers(at("2024-03-09T00:00:00Z"), at("2024-04-08T00:00:00Z"))
    | st.integers(at("2024-10-25T00:00:00Z"), at("2024-11-05T00:00:00Z")),
    st.lists(st.integers(-3 * 3_600_000, 9 * 3_600_000), min_size=1, max_size=40),
)
def test_memoised_quiet_until_matches_the_direct_answer(
    ws: list[QuietWindow], zone_name: str, start: int, steps: list[int]
) -> None:
    """The span and minute memos never change an answer, whatever the order of instants."""
    zone = ZoneInfo(zone_name)
    quiet = QuietHours("defer", tuple(ws))
    instant = start
    for step in steps:
        instant += step
        expected = _quiet_until(QuietHours("defer", tuple(ws)), zone, instant // 60_000 * 60_000)
        assert quiet_until(quiet, zone, instant) == expected, (zone_name, instant)


def test_the_span_memo_stops_where_the_clock_goes_back() -> None:
    """27 October 2024 in Warsaw: 02:00-03:00 happens twice. After the first 02:30 the window
    01:00-02:30 is over, yet it is quiet again in the repeated hour until the second 02:30."""
    quiet = QuietHours("defer", EARLY.windows)
    assert quiet_until(quiet, WARSAW, at("2024-10-27T02:40:00+02:00")) is None
    assert quiet_until(quiet, WARSAW, at("2024-10-27T02:10:00+01:00")) == at(
        "2024-10-27T02:30:00+01:00"
    )
