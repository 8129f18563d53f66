"""Durations, instants, and quiet hours across midnight and daylight-saving changes."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from streams.scoring.durations import format_duration, format_instant, parse_duration, parse_instant
from streams.scoring.plan import QuietHours, QuietWindow
from streams.scoring.quiet_hours import quiet_until


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
