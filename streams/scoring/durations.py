"""Durations (``30d``, ``24h``, ``500ms``) and instants (ISO-8601 with offset, or epoch millis)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_UNIT_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_DURATION = re.compile(r"(\d{1,9})(ms|s|m|h|d|w)")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)

#: Largest instant accepted anywhere: 9999-12-31T23:59:59.999Z.
MAX_INSTANT_MS = 253_402_300_799_999
#: Longest duration accepted (about 100 years); longer ones are almost certainly typos.
MAX_DURATION_MS = 100 * 365 * 86_400_000


def parse_duration(text: object) -> int | None:
    """Milliseconds of a duration such as ``30d``, ``1h30m`` or ``500ms``; None if invalid.

    Units: ``w`` weeks, ``d`` days, ``h`` hours, ``m`` minutes, ``s`` seconds, ``ms``
    milliseconds. Several parts may be concatenated, largest first is customary but not
    required. The result must be positive and at most ``MAX_DURATION_MS``.
    """
    if not isinstance(text, str) or not text or len(text) > 64:
        return None
    total = 0
    position = 0
    for match in _DURATION.finditer(text):
        if match.start() != position:
            return None
        total += int(match.group(1)) * _UNIT_MS[match.group(2)]
        position = match.end()
    if position != len(text) or total <= 0 or total > MAX_DURATION_MS:
        return None
    return total


def format_duration(ms: int) -> str:
    """The shortest exact spelling of a duration in the units ``parse_duration`` reads."""
    for unit in ("w", "d", "h", "m", "s"):
        if ms % _UNIT_MS[unit] == 0:
            return f"{ms // _UNIT_MS[unit]}{unit}"
    return f"{ms}ms"


def parse_instant(value: object) -> int | None:
    """Epoch milliseconds of an instant, or None if it is not a valid one.

    Accepts a non-negative integer (epoch millis; ``bool`` is not an integer here) or an
    ISO-8601 string *with* an offset (``2024-05-01T10:00:00Z``, ``...+02:00``). Naive
    timestamps are rejected: they would silently depend on the machine's zone.
    """
    if type(value) is int:
        return value if 0 <= value <= MAX_INSTANT_MS else None
    if not isinstance(value, str) or not 10 <= len(value) <= 40:
        return None
    if value.isdigit():
        return parse_instant(int(value))
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None or moment.utcoffset() is None:
        return None
    ms = (moment - _EPOCH) // _ONE_MS
    return ms if 0 <= ms <= MAX_INSTANT_MS else None


def format_instant(ms: int) -> str:
    """ISO-8601 UTC text of epoch millis, e.g. ``2024-05-01T10:00:00.000Z``."""
    moment = _EPOCH + timedelta(milliseconds=ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
