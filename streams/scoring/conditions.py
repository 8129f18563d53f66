"""Conditions as data, compiled once into closures.

A condition is a mapping. Keys ``all`` (list), ``any`` (list) and ``not`` (one condition)
combine; any other key is a dotted path whose value maps operators to operands; several keys
or several operators mean *all of them*. Paths resolve against a plain mapping (an event's own
fields, or the entity-state view of a ``while`` rule). A path whose value is missing or null
satisfies only ``exists: false``, ``ne`` and ``not_in`` (those are exact negations of
``exists: true``, ``eq`` and ``in``).

Typing: numbers compare as ``Decimal`` (a string holding a number is compared as that number
when the operand is a number); strings compare as strings, case-sensitively, except ``glob``,
which is case-insensitive. Booleans equal only booleans. Nothing here ever evaluates code;
``glob`` and ``regex`` run on RE2, in time linear in the text (``patterns.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from streams.scoring.patterns import glob_condition, regex_condition
from streams.scoring.shown import shown

Predicate = Callable[[dict[str, Any]], bool]
Report = Callable[[str, str], None]

MAX_PATTERN_LENGTH = 256
MAX_LIST_ITEMS = 1000
_COMBINATORS = ("all", "any", "not")
OPERATORS = (
    "eq",
    "ne",
    "in",
    "not_in",
    "gt",
    "gte",
    "lt",
    "lte",
    "contains",
    "starts_with",
    "glob",
    "regex",
    "exists",
)


def to_number(value: object) -> Decimal | None:
    """The Decimal a runtime value stands for, if it is a number or a numeric string."""
    if type(value) is Decimal:
        return value
    if type(value) is str and len(value) <= 64:
        try:
            number = Decimal(value)
        except InvalidOperation:
            return None
        return number if number.is_finite() else None
    return None


def plan_number(value: object) -> Decimal | None:
    """A plan operand as Decimal (YAML ints, exact decimals), or None if not a number."""
    if type(value) is int:
        return Decimal(value)
    if type(value) is Decimal and value.is_finite():
        return value
    return None


def make_getter(path: str) -> Callable[[dict[str, Any]], Any]:
    """A fast accessor for a validated dotted path (one or two segments); None if missing."""
    head, _, tail = path.partition(".")
    if not tail:
        return lambda fields: fields.get(head)

    def get(fields: dict[str, Any]) -> Any:
        inner = fields.get(head)
        return inner.get(tail) if type(inner) is dict else None

    return get


def compile_condition(
    spec: object, *, check_path: Callable[[str], str | None], report: Report, field: str
) -> Predicate | None:
    """Compile ``spec``; report every problem through ``report(field, message)``.

    Returns None if anything was wrong (all problems are still reported).
    """
    if not isinstance(spec, dict) or not spec:
        report(field, "must be a non-empty mapping of paths or all/any/not")
        return None
    parts: list[Predicate | None] = []
    for key, value in spec.items():
        where = f"{field}.{key}"
        if key in ("all", "any"):
            parts.append(_combine(key, value, check_path=check_path, report=report, field=where))
        elif key == "not":
            inner = compile_condition(value, check_path=check_path, report=report, field=where)
            parts.append(None if inner is None else _negate(inner))
        elif not isinstance(key, str):
            report(field, f"keys must be paths or all/any/not (got {shown(key)})")
            parts.append(None)
        else:
            problem = check_path(key)
            if problem is not None:
                report(where, problem)
                parts.append(None)
            else:
                parts.append(_compile_ops(key, value, report=report, field=where))
    if any(part is None for part in parts):
        return None
    return _all([part for part in parts if part is not None])


def _combine(
    key: str,
    items: object,
    *,
    check_path: Callable[[str], str | None],
    report: Report,
    field: str,
) -> Predicate | None:
    if not isinstance(items, list) or not items:
        report(field, "must be a non-empty list of conditions")
        return None
    compiled = [
        compile_condition(item, check_path=check_path, report=report, field=f"{field}[{i}]")
        for i, item in enumerate(items)
    ]
    if any(part is None for part in compiled):
        return None
    parts = [part for part in compiled if part is not None]
    return _all(parts) if key == "all" else _any(parts)


def _all(parts: list[Predicate]) -> Predicate:
    if len(parts) == 1:
        return parts[0]
    frozen = tuple(parts)
    return lambda fields: all(part(fields) for part in frozen)


def _any(parts: list[Predicate]) -> Predicate:
    if len(parts) == 1:
        return parts[0]
    frozen = tuple(parts)
    return lambda fields: any(part(fields) for part in frozen)


def _negate(inner: Predicate) -> Predicate:
    return lambda fields: not inner(fields)


def _compile_ops(path: str, ops: object, *, report: Report, field: str) -> Predicate | None:
    if not isinstance(ops, dict) or not ops:
        report(
            field,
            f"must be a mapping of operators to operands, e.g. {{eq: x}} "
            f"(operators: {', '.join(OPERATORS)})",
        )
        return None
    get = make_getter(path)
    parts: list[Predicate | None] = []
    for op, operand in ops.items():
        if op not in OPERATORS:
            report(f"{field}.{op}", f"unknown operator (known: {', '.join(OPERATORS)})")
            parts.append(None)
            continue
        message, predicate = _compile_op(op, operand, get)
        if message is not None:
            report(f"{field}.{op}", f"{message} (got {shown(operand)})")
        parts.append(predicate)
    if any(part is None for part in parts):
        return None
    return _all([part for part in parts if part is not None])


Getter = Callable[[dict[str, Any]], Any]
Compiled = tuple[str | None, Predicate | None]


def _compile_op(op: str, operand: object, get: Getter) -> Compiled:
    if op == "exists":
        if type(operand) is not bool:
            return "must be true or false", None
        return None, (lambda f: get(f) is not None) if operand else (lambda f: get(f) is None)
    if op in ("eq", "ne"):
        equal = _equality(operand, get)
        if equal is None:
            return "must be a string, number or boolean", None
        return None, equal if op == "eq" else _negate(equal)
    if op in ("in", "not_in"):
        member = _membership(operand, get)
        if member is None:
            return f"must be a list of 1 to {MAX_LIST_ITEMS} strings, numbers or booleans", None
        return None, member if op == "in" else _negate(member)
    if op in ("gt", "gte", "lt", "lte"):
        return _ordering(op, operand, get)
    return _text(op, operand, get)


def _equality(operand: object, get: Getter) -> Predicate | None:
    if type(operand) is bool:
        return lambda f: get(f) is operand
    if type(operand) is str:
        return lambda f: get(f) == operand
    number = plan_number(operand)
    if number is None:
        return None

    def equal(fields: dict[str, Any]) -> bool:
        value = get(fields)
        if type(value) is Decimal:
            return bool(value == number)
        return type(value) is str and to_number(value) == number

    return equal


def _membership(operand: object, get: Getter) -> Predicate | None:
    if not isinstance(operand, list) or not 0 < len(operand) <= MAX_LIST_ITEMS:
        return None
    texts: set[str] = set()
    numbers: set[Decimal] = set()
    flags: set[bool] = set()
    for item in operand:
        number = plan_number(item)
        if type(item) is bool:
            flags.add(item)
        elif type(item) is str:
            texts.add(item)
        elif number is not None:
            numbers.add(number)
        else:
            return None

    def member(fields: dict[str, Any]) -> bool:
        value = get(fields)
        kind = type(value)
        if kind is str:
            return value in texts or (bool(numbers) and to_number(value) in numbers)
        if kind is Decimal:
            return value in numbers
        return kind is bool and value in flags

    return member


_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
}


def _ordering(op: str, operand: object, get: Getter) -> Compiled:
    compare = _ORDER[op]
    if type(operand) is str:
        return None, lambda f: type(value := get(f)) is str and compare(value, operand)
    number = plan_number(operand)
    if number is None:
        return "must be a number or a string", None

    def ordered(fields: dict[str, Any]) -> bool:
        value = to_number(get(fields))
        return value is not None and compare(value, number)

    return None, ordered


def _text(op: str, operand: object, get: Getter) -> Compiled:
    if type(operand) is not str or not operand or len(operand) > MAX_PATTERN_LENGTH:
        return f"must be a non-empty string of at most {MAX_PATTERN_LENGTH} characters", None
    if op == "contains":
        return None, lambda f: type(value := get(f)) is str and operand in value
    if op == "starts_with":
        return None, lambda f: type(value := get(f)) is str and value.startswith(operand)
    if op == "glob":
        return glob_condition(operand, get)
    return regex_condition(operand, get)
