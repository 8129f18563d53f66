"""Quiet hours: is an instant inside a quiet window of a score, and when does the quiet end?

Windows are evaluated on the event time converted to the score's time zone (zoneinfo, so
daylight-saving correct). ``days`` are the days on which a window *starts*; a window whose
``to`` is not after its ``from`` ends on the next day. Adjacent or overlapping windows chain:
the quiet period ends when no window covers the end instant (followed at most 16 hops, so a
plan that is quiet around the clock still releases deferred awards about weekly).

Window ends are local wall times. One that falls in a DST gap (does not exist that day)
resolves with zoneinfo's default ``fold=0``, i.e. with the offset in force before the
transition: a window ending at 02:30 on the spring-forward night ends at 03:30 summer time. One
that is ambiguous (fall-back) ends at its first occurrence, or its second if the event lies
after the first.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from streams.scoring.plan.spec import QuietHours

_MAX_CHAIN = 16
_MEMO_LIMIT = 10_000


def quiet_until(quiet: QuietHours, zone: ZoneInfo, at_ms: int) -> int | None:
    """Epoch millis at which the quiet period containing ``at_ms`` ends; None if not quiet.

    Windows have minute resolution, so the answer only depends on the minute of ``at_ms``;
    it is memoised per minute on the (per-score) ``QuietHours`` object. The answer is also the
    same until the next window start or end (or midnight): that span is remembered too, so
    events arriving roughly in time order are answered without any date arithmetic.
    """
    since, until, known = quiet.span[0]
    if since <= at_ms < until:
        return None if known < 0 else known
    minute = at_ms // 60_000
    memo = quiet.memo
    if minute in memo:
        return memo[minute]
    if len(memo) >= _MEMO_LIMIT:
        memo.clear()
    start = minute * 60_000
    end = memo[minute] = _quiet_until(quiet, zone, start)
    quiet.span[0] = (start, _next_boundary(quiet, zone, start), -1 if end is None else end)
    return end


def _next_boundary(quiet: QuietHours, zone: ZoneInfo, at_ms: int) -> int:
    """The first window start or end, or midnight, after ``at_ms``: until then the answer of
    ``_quiet_until`` stays the same. Across a change of UTC offset (the local clock jumps) only
    the minute of ``at_ms`` is vouched for."""
    local = datetime.fromtimestamp(at_ms // 1000, UTC).astimezone(zone)
    today = local.date()
    tomorrow = today + timedelta(days=1)
    first = _local_ms(tomorrow, 0, zone, after_ms=at_ms)
    for window in quiet.windows:
        for minute in (window.start_min, window.end_min):
            for day in (today, tomorrow):
                moment = _local_ms(day, minute, zone, after_ms=at_ms)
                if moment is not None and (first is None or moment < first):
                    first = moment
    minute_end = at_ms + 60_000
    if first is None or first <= minute_end:
        return minute_end
    before = datetime.fromtimestamp((first - 1) // 1000, UTC).astimezone(zone)
    return first if before.utcoffset() == local.utcoffset() else minute_end


def _quiet_until(quiet: QuietHours, zone: ZoneInfo, at_ms: int) -> int | None:
    end = _window_end(quiet, zone, at_ms)
    if end is None:
        return None
    for _ in range(_MAX_CHAIN):
        later = _window_end(quiet, zone, end)
        if later is None or later <= end:
            break
        end = later
    return end


def _window_end(quiet: QuietHours, zone: ZoneInfo, at_ms: int) -> int | None:
    local = datetime.fromtimestamp(at_ms // 1000, UTC).astimezone(zone)
    day = local.weekday()
    minute = local.hour * 60 + local.minute
    today = local.date()
    best: int | None = None
    for window in quiet.windows:
        end_day: date | None = None
        if window.start_min < window.end_min:
            if day in window.days and window.start_min <= minute < window.end_min:
                end_day = today
        elif day in window.days and minute >= window.start_min:
            end_day = today + timedelta(days=1)
        elif (day - 1) % 7 in window.days and minute < window.end_min:
            end_day = today
        if end_day is None:
            continue
        end = _local_ms(end_day, window.end_min, zone, after_ms=at_ms)
        if end is not None and (best is None or end > best):
            best = end
    return best


def _local_ms(day: date, minute: int, zone: ZoneInfo, *, after_ms: int) -> int | None:
    if minute == 1440:
        day, minute = day + timedelta(days=1), 0
    for fold in (0, 1):
        moment = datetime(
            day.year, day.month, day.day, minute // 60, minute % 60, tzinfo=zone, fold=fold
        )
        ms = int(moment.timestamp()) * 1000
        if ms > after_ms:
            return ms
    return None
