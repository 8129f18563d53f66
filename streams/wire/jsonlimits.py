"""JSON inputs read within bounds: size, nesting depth, digits; never a ``RecursionError``.

Python's JSON decoder recurses once per nested list or object, so a value of 100,000 brackets
raises ``RecursionError`` (or, under a raised recursion limit, exhausts the C stack). Inputs are
flat records: the deepest legitimate one (an attribute map in an object) is 2 levels, so more
than :data:`MAX_JSON_DEPTH` is refused *before* decoding. The check is cheap on the hot path:
counting the opening brackets is a C-speed byte scan, and only a value with more of them than
the limit is walked bracket by bracket (skipping strings).

Numbers: fractions become exact ``Decimal`` (``1e1000000`` stays a number, refused by the field
that reads it with its range); ``NaN`` and ``Infinity`` likewise (``Decimal('NaN')``), so that
the message names the field; integers of more than 4,300 digits (Python's conversion limit) are
refused here with a plain reason.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

#: Deepest nesting of lists and objects accepted in one JSON value.
MAX_JSON_DEPTH = 64
#: Largest JSON value accepted: an input record on a JSON topic, or one line of a JSON-lines file.
MAX_JSON_BYTES = 1024 * 1024
_MAX_DIGITS = 4300
#: A string (closed, or running to the end) or a bracket.
_BYTES_TOKENS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\Z)|[\[\]{}]', re.DOTALL)
_TEXT_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\Z)|[\[\]{}]', re.DOTALL)


class JsonLimitError(ValueError):
    """A JSON value outside the bounds; ``str`` is the reason for people."""


def depth_exceeds(data: bytes | str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether lists and objects nest deeper than ``limit`` in ``data`` (strings skipped)."""
    if isinstance(data, bytes):
        if data.count(b"[") + data.count(b"{") <= limit:
            return False
        tokens = _BYTES_TOKENS.finditer(data)
        opening, closing = (b"[", b"{"), (b"]", b"}")
    else:
        if data.count("[") + data.count("{") <= limit:
            return False
        tokens = _TEXT_TOKENS.finditer(data)  # type: ignore[assignment]
        opening, closing = ("[", "{"), ("]", "}")  # type: ignore[assignment]
    depth = 0
    for token in tokens:
        found = token.group()
        if found in opening:
            depth += 1
            if depth > limit:
                return True
        elif found in closing:
            depth = max(0, depth - 1)
    return False


def loads(data: bytes | str) -> Any:
    """Decode one JSON value within the bounds; raise :class:`JsonLimitError` past them and
    ``ValueError`` (``json.JSONDecodeError``, ``UnicodeDecodeError``) if it is not JSON."""
    if len(data) > MAX_JSON_BYTES:
        raise JsonLimitError(f"{len(data):,} bytes: larger than {MAX_JSON_BYTES:,}")
    if depth_exceeds(data):
        raise JsonLimitError(f"lists and objects nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(data, parse_float=Decimal, parse_constant=Decimal)
    except RecursionError:  # pragma: no cover - the depth is checked first
        raise JsonLimitError("nested too deeply") from None
    except ValueError as error:
        if str(error).startswith("Exceeds the limit"):  # Python's int conversion limit
            raise JsonLimitError(f"an integer of more than {_MAX_DIGITS:,} digits") from None
        raise
