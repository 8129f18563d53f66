"""Input items (events and adjustment commands), their strict parser, and routing to entities.

``parse_input`` is total: any mapping in, an ``Event``, an ``Adjustment`` or an ``Invalid``
out, never an exception. Unknown keys are ignored (forward compatibility); known keys must
have the documented types. Amounts and values become ``Decimal`` (from strings, ints or floats
via their shortest repr), never float arithmetic.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, NamedTuple

from streams.scoring.catalog import DEAL_STATUSES, EMAIL_ACTIONS, EVENT_TYPES, EntityKind
from streams.scoring.durations import MAX_DURATION_MS, MAX_INSTANT_MS, parse_duration, parse_instant
from streams.scoring.plan.spec import MAX_POINTS
from streams.scoring.shown import shown
from streams.scoring.tenant import TenantConflict, tenant_field

MAX_TEXT = 4096
MAX_ATTRIBUTES = 256
MAX_AMOUNT = Decimal(10) ** 18
_AMOUNT_RANGE = "greater than -10^18 and less than 10^18"
AdjustmentOp = Literal["add", "subtract", "set", "reset"]
_EVENT_TYPES = frozenset(EVENT_TYPES)
_OPTIONAL_TEXT: dict[str, tuple[str, ...]] = {
    "page_visit": ("referrer", "title", "session_id"),
    "email": ("campaign_id", "message_id", "link_url"),
    "purchase": (),
    "deal.stage_changed": ("from_stage",),
    "contact.updated": (),
}


class EntityKey(NamedTuple):
    """One scored entity: tenant (None = default tenant), kind and id.

    A named tuple: it keys every state lookup, and a tuple hashes and compares in C.
    """

    tenant_id: str | None
    kind: EntityKind
    entity_id: str


class Event(NamedTuple):
    """A behavioural or profile event (docs/inputs.md). ``fields`` holds the type's own fields.

    Named tuples, not frozen dataclasses, for the items: one is built per input record, and a
    frozen dataclass's ``__init__`` costs about ten thousand instructions, compiled or not.
    """

    event_id: str
    event_type: str
    tenant_id: str | None
    occurred_at_ms: int
    contact_id: str | None
    deal_id: str | None
    fields: dict[str, Any]


class Adjustment(NamedTuple):
    """A score-adjustment command (add/subtract/set/reset), idempotent by ``command_id``."""

    command_id: str
    tenant_id: str | None
    occurred_at_ms: int
    entity: EntityKind
    entity_id: str
    score: str
    op: AdjustmentOp
    points: int = 0
    expires_after_ms: int | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Invalid:
    """Why a record is not a valid input item (for dead letters and offline reports);
    ``occurred_ms``: an event time past the year 9999 (epoch micro- or nanoseconds, likely),
    ahead of any arrival, which callers refuse as a future event (``scoring.arrival``)."""

    reason: str
    occurred_ms: int | None = None


Item = Event | Adjustment

#: Builds a named tuple without its generated ``__new__`` (a Python function, even in the
#: compiled build: a few thousand instructions per call instead of a few hundred).
_new = tuple.__new__


class _Bad(Exception):
    """Internal: aborts parsing with a reason (and an event time past 9999, see ``Invalid``);
    never escapes ``parse_input``."""

    def __init__(self, reason: str, occurred_ms: int | None = None) -> None:
        super().__init__(reason)
        self.occurred_ms = occurred_ms


def parse_input(record: Mapping[str, Any]) -> Event | Adjustment | Invalid:
    """Parse a decoded record (a plain dict with the field names of docs/inputs.md) into an input
    item."""
    try:
        if not isinstance(record, Mapping):
            raise _Bad(f"a record must be an object (got {type(record).__name__})")
        kind = record.get("type")
        if kind == "adjustment":
            return _adjustment(record)
        if type(kind) is not str or kind not in _EVENT_TYPES:
            raise _Bad(f"unknown type {shown(kind)} (expected an event type or 'adjustment')")
        return _event(record, str(kind))
    except (_Bad, TenantConflict) as bad:
        return Invalid(str(bad), bad.occurred_ms)
    except (TypeError, ValueError, ArithmeticError) as error:  # a safety net: stay total
        said = str(error) if "<" not in str(error) else ""  # decimal signals print as classes
        return Invalid(f"malformed record ({type(error).__name__}){': ' if said else ''}{said}")


def route(item: Item) -> tuple[EntityKey, ...]:
    """The entities an item feeds: the contact and/or the deal; an adjustment its one target."""
    if type(item) is Adjustment:
        return (_new(EntityKey, (item.tenant_id, item.entity, item.entity_id)),)
    assert type(item) is Event  # noqa: S101 - Item is a closed union
    keys: list[EntityKey] = []
    if item.contact_id is not None:
        keys.append(_new(EntityKey, (item.tenant_id, "contact", item.contact_id)))
    if item.deal_id is not None:
        keys.append(_new(EntityKey, (item.tenant_id, "deal", item.deal_id)))
    return tuple(keys)


def _event(record: Mapping[str, Any], kind: str) -> Event:
    event_id = _text(record, "event_id")
    tenant_id = _text(record, tenant_field(record), optional=True)
    occurred = _instant(record, "occurred_at")
    contact_id = _text(record, "contact_id", optional=True)
    deal_id = _text(record, "deal_id", optional=True)
    if contact_id is None and deal_id is None:
        raise _Bad("contact_id or deal_id is required")
    family = "email" if kind.startswith("email.") else kind
    fields: dict[str, Any] = {}
    for name in _OPTIONAL_TEXT[family]:
        value = _text(record, name, optional=True)
        if value is not None:
            fields[name] = value
    if kind == "page_visit":
        fields["url"] = _text(record, "url")
    elif family == "email":
        action = kind.removeprefix("email.")
        given = record.get("action")
        if given is not None and given != action:
            raise _Bad(f"action {shown(given)} contradicts type {shown(kind)}")
        assert action in EMAIL_ACTIONS  # noqa: S101 - guaranteed by EVENT_TYPES
        fields["action"] = action
    elif kind == "purchase":
        fields["order_id"] = _text(record, "order_id")
        fields["amount"] = _decimal(record, "amount")
        currency = _text(record, "currency")
        if len(currency) != 3 or not currency.isascii() or not currency.isupper():
            raise _Bad(f"currency must be an ISO 4217 code such as EUR (got {shown(currency)})")
        fields["currency"] = currency
    elif kind == "deal.stage_changed":
        if deal_id is None:
            raise _Bad("deal.stage_changed requires deal_id")
        fields["pipeline"] = _text(record, "pipeline")
        fields["to_stage"] = _text(record, "to_stage")
        status = record.get("status")
        if status is not None:
            if status not in DEAL_STATUSES:
                raise _Bad(f"status must be one of open, won, lost (got {shown(status)})")
            fields["status"] = status
        if record.get("value") is not None:
            fields["value"] = _decimal(record, "value")
    else:
        fields["attributes"] = _attributes(record.get("attributes"))
    return _new(Event, (event_id, kind, tenant_id, occurred, contact_id, deal_id, fields))


def _adjustment(record: Mapping[str, Any]) -> Adjustment:
    command_id = _text(record, "command_id")
    tenant_id = _text(record, tenant_field(record), optional=True)
    occurred = _instant(record, "occurred_at")
    entity = record.get("entity")
    if entity not in ("contact", "deal"):
        raise _Bad(f"entity must be contact or deal (got {shown(entity)})")
    entity_id = _text(record, "entity_id")
    score = _text(record, "score")
    op = record.get("op")
    if op not in ("add", "subtract", "set", "reset"):
        raise _Bad(f"op must be add, subtract, set or reset (got {shown(op)})")
    points = record.get("points")
    if op == "reset":
        if points is not None:
            raise _Bad("reset takes no points")
        points = 0
    elif type(points) is not int or abs(points) > MAX_POINTS:
        raise _Bad(f"points must be an integer from -{MAX_POINTS:,} to {MAX_POINTS:,} "
                   f"(got {shown(points)})")  # fmt: skip
    elif op != "set" and points <= 0:
        raise _Bad(f"points of {op} must be positive (got {points})")
    expires = record.get("expires_after")
    ttl_ms: int | None = None
    if expires is not None:
        if op not in ("add", "subtract"):
            raise _Bad(f"expires_after is only valid for add and subtract, not {op}")
        ttl_ms = expires if type(expires) is int and 0 < expires <= MAX_DURATION_MS else None
        ttl_ms = ttl_ms or parse_duration(expires)
        if ttl_ms is None:
            raise _Bad(f"expires_after must be a duration like 30d, or millis from 1 to "
                       f"{MAX_DURATION_MS:,} (got {shown(expires)})")  # fmt: skip
    reason = _text(record, "reason", optional=True)
    return _new(
        Adjustment,
        (command_id, tenant_id, occurred, entity, entity_id, score, op, points, ttl_ms, reason),
    )


def _text(record: Mapping[str, Any], name: str, *, optional: bool = False) -> Any:
    value = record.get(name)
    if value is None:
        if optional:
            return None
        raise _Bad(f"{name} is required")
    if type(value) is not str or not value:
        raise _Bad(f"{name} must be a non-empty string (got {shown(value)})")
    if len(value) > MAX_TEXT:
        raise _Bad(f"{name} is longer than {MAX_TEXT} characters")
    return value


def _instant(record: Mapping[str, Any], name: str) -> int:
    value = record.get(name)
    ms = parse_instant(value)
    if ms is None:
        number = int(value) if type(value) is str and value.isdigit() and len(value) < 40 else value
        if type(number) is int and MAX_INSTANT_MS < number < 10**40:
            raise _Bad(f"{name} {number} (epoch millis) is after the year 9999: epoch micro- or "
                       "nanoseconds instead of milliseconds?", number)  # fmt: skip
        raise _Bad(
            f"{name} must be epoch millis or ISO-8601 with an offset, e.g. "
            f"2024-05-01T10:00:00Z (got {shown(value)})"
        )
    return ms


def to_decimal(value: object) -> Decimal | None:
    """An exact Decimal of a str/int/float amount, None if not a finite, sane number."""
    if type(value) is int:
        number = Decimal(value)
    elif type(value) is float:
        number = Decimal(repr(value))
    elif type(value) is Decimal:
        number = value
    elif type(value) is str and 0 < len(value) <= 64:
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            return None
    else:
        return None
    return number if number.is_finite() and number.copy_abs() < MAX_AMOUNT else None


def _decimal(record: Mapping[str, Any], name: str) -> Decimal:
    value = record.get(name)
    number = to_decimal(value)
    if number is None:
        raise _Bad(f"{name} must be a decimal number {_AMOUNT_RANGE} (got {shown(value)})")
    return number


def _attributes(value: object) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise _Bad(f"attributes must be an object (got {shown(value)})")
    if len(value) > MAX_ATTRIBUTES:
        raise _Bad(f"attributes has more than {MAX_ATTRIBUTES} entries")
    clean: dict[str, Any] = {}
    for key, item in value.items():
        if type(key) is not str or not key or len(key) > 256:
            raise _Bad(f"attribute names must be strings of 1-256 characters (got {shown(key)})")
        if item is None or type(item) is bool:
            clean[key] = item
        elif type(item) is str:
            if len(item) > MAX_TEXT:
                raise _Bad(f"attribute {shown(key)} is longer than {MAX_TEXT} characters")
            clean[key] = item
        else:
            if type(item) not in (int, float, Decimal):
                raise _Bad(f"attribute {shown(key)} must be a string, number, boolean or null")
            number = to_decimal(item)
            if number is None:
                raise _Bad(f"attribute {shown(key)} must be a number {_AMOUNT_RANGE} "
                           f"(got {shown(item)})")  # fmt: skip
            clean[key] = number
    return clean
