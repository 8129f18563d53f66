"""Event times bounded ahead of their arrival (the plan's ``max_future``).

One item dated ``9999-01-01`` (a publisher's clock or unit bug) would otherwise be scored and move
its entity's event-time watermark to 9999, after which every real event of that entity is
``too_late``. :func:`future_reason` is the whole decision, shared by the worker (the arrival is
the input record's Kafka timestamp) and the offline readers (a reference instant): ``None`` for
an item that may be scored, else the reason it is refused. Pure, total, for any integer.
"""

from __future__ import annotations

from streams.scoring.durations import MAX_INSTANT_MS, format_duration, format_instant

_DAY_MS = 86_400_000
_YEAR_MS = 365 * _DAY_MS
#: A reading in another unit counts as plausible this close to the arrival.
_PLAUSIBLE_MS = 10 * _YEAR_MS
#: Epoch values in other units, and how many milliseconds one of them is (as a divisor).
_UNITS = (("microseconds", 1_000), ("nanoseconds", 1_000_000))


def future_reason(
    occurred_ms: int, arrival_ms: int, max_future_ms: int, *, reference: str = "its arrival"
) -> str | None:
    """Why an item whose event time is ``occurred_ms`` is refused when it arrives at
    ``arrival_ms`` under a plan accepting ``max_future_ms`` ahead; None if it is accepted.

    ``reference`` names the arrival in the reason (offline: the instant given instead).
    """
    ahead = occurred_ms - arrival_ms
    if ahead <= max_future_ms:
        return None
    reason = (
        f"occurred_at {_instant(occurred_ms)} is {_span(ahead)} ahead of {reference} "
        f"{_instant(arrival_ms)}; at most {format_duration(max_future_ms)} ahead is accepted "
        "(the plan's max_future)"
    )
    hint = unit_hint(occurred_ms, arrival_ms)
    return reason if hint is None else f"{reason}; {hint}"


def unit_hint(occurred_ms: int, arrival_ms: int) -> str | None:
    """What a wrong event time probably is: epoch micro- or nanoseconds read as milliseconds
    (its value divided by 1000 or 1,000,000 lands near the arrival), or a placeholder date."""
    if abs(occurred_ms - arrival_ms) <= _PLAUSIBLE_MS:  # a wrong clock, not a wrong unit
        return None
    for name, divisor in _UNITS:
        candidate = occurred_ms // divisor
        if abs(candidate - arrival_ms) <= _PLAUSIBLE_MS:
            return (
                f"it looks like {name} since the epoch, not milliseconds (as {name} it is "
                f"{_instant(candidate)}); send epoch milliseconds or ISO-8601"
            )
    if 253_370_764_800_000 <= occurred_ms <= MAX_INSTANT_MS:  # in the year 9999
        return "a date in the year 9999 is usually a placeholder for 'no date'"
    return None


def _instant(ms: int) -> str:
    if 0 <= ms <= MAX_INSTANT_MS:
        return format_instant(ms)
    return f"{ms} (epoch millis {'before 1970' if ms < 0 else 'after the year 9999'})"


def _span(ms: int) -> str:
    """A length of time for people: ``1h 0.001s``, ``3d 4h``, ``about 7,973 years``."""
    if ms >= 2 * _YEAR_MS:
        return f"about {ms // _YEAR_MS:,} years"
    parts = []
    for unit, size in (("d", _DAY_MS), ("h", 3_600_000), ("m", 60_000)):
        if ms >= size:
            parts.append(f"{ms // size}{unit}")
            ms %= size
    if ms:
        seconds, millis = divmod(ms, 1000)
        parts.append(f"{seconds}.{millis:03d}s" if millis else f"{seconds}s")
    return " ".join(parts) or "0s"
