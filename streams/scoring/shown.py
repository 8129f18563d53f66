"""Values as users wrote them, for messages: never a Python repr.

``repr`` leaks the implementation into what a marketer or a publisher reads: ``Decimal('1E+30')``,
``"it's"`` (double quotes when the text has a single one), ``True``, ``None``,
``[<class 'x'>]``. :func:`shown` renders the values a plan or an input can hold the way YAML
and JSON spell them: text in single quotes, numbers as written (``1E+30``, ``NaN``), ``true``,
``false``, ``null``, lists in brackets and mappings in braces; control characters of a text are
escaped (``\\n``, ``\\x07``) so that a message stays on one line. Long renderings are cut with
``...``.
"""

from __future__ import annotations

from decimal import Decimal

_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_FLOATS = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def shown(value: object, limit: int = 80) -> str:
    """``value`` rendered plainly, at most ``limit`` characters (then cut with ``...``)."""
    text = _render(value, limit)
    return text if len(text) <= limit else text[: max(limit - 3, 1)] + "..."


def _render(value: object, budget: int) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return "'" + _plain(value[: budget + 1]) + "'"
    if isinstance(value, int):
        if value.bit_length() < 200:
            return str(value)
        return f"an integer of about {int(value.bit_length() * 0.30103)} digits"
    if isinstance(value, Decimal):
        return _decimal(value)
    if isinstance(value, float):
        return _FLOATS.get(str(value), str(value))
    if isinstance(value, bytes | bytearray):
        return f"{len(value)} bytes of binary data"
    if isinstance(value, dict):
        parts: list[str] = []
        for key, item in value.items():
            if sum(map(len, parts)) > budget:
                break
            name = _plain(key) if isinstance(key, str) else _render(key, budget)
            parts.append(f"{name}: {_render(item, budget)}")
        return "{" + ", ".join(parts) + "}"
    if isinstance(value, list | tuple | set | frozenset):
        parts = []
        for item in value:
            if sum(map(len, parts)) > budget:
                break
            parts.append(_render(item, budget))
        return "[" + ", ".join(parts) + "]"
    return f"a value of type {type(value).__name__}"


def _decimal(value: Decimal) -> str:
    if not value.is_finite():
        return "NaN" if value.is_nan() else ("-Infinity" if value.is_signed() else "Infinity")
    digits = len(value.as_tuple().digits)
    if digits > 40:  # a 5000-digit number is not worth printing whole
        return f"{'-' if value.is_signed() else ''}a number of {digits} digits"
    return str(value)


def _plain(text: str) -> str:
    if text.isprintable():
        return text
    return "".join(
        ch if ch.isprintable() else _ESCAPES.get(ch, f"\\x{ord(ch):02x}" if ord(ch) < 256
                                                  else f"\\u{ord(ch):04x}")
        for ch in text
    )  # fmt: skip
