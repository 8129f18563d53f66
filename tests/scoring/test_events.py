"""The input parser: strict, total (never raises), exact decimals; routing."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.scoring import Adjustment, EntityKey, Event, Invalid, parse_input, route

BASE = {"event_id": "e1", "occurred_at": "2024-05-06T10:00:00Z", "contact_id": "c1"}
T0 = 1_714_989_600_000


def parsed(**record: Any) -> Event | Adjustment | Invalid:
    return parse_input(record)


@pytest.mark.parametrize(
    ("record", "fields"),
    [
        # a page visit keeps its url and optional texts
        ({"type": "page_visit", "url": "/p", "title": "T", **BASE}, {"url": "/p", "title": "T"}),
        # an email event gets its action from the type
        (
            {"type": "email.open", "campaign_id": "k", **BASE},
            {"action": "open", "campaign_id": "k"},
        ),
        # purchase amounts are exact decimals from strings, ints and floats
        (
            {"type": "purchase", "order_id": "o", "amount": "10.10", "currency": "EUR", **BASE},
            {"order_id": "o", "amount": Decimal("10.10"), "currency": "EUR"},
        ),
        (
            {"type": "purchase", "order_id": "o", "amount": 0.1, "currency": "EUR", **BASE},
            {"order_id": "o", "amount": Decimal("0.1"), "currency": "EUR"},
        ),
        # deal stage changes
        (
            {
                "type": "deal.stage_changed",
                "deal_id": "d",
                "pipeline": "p",
                "to_stage": "won",
                "status": "won",
                "value": 5,
                **BASE,
            },
            {"pipeline": "p", "to_stage": "won", "status": "won", "value": Decimal(5)},
        ),
        # profile attributes: numbers become decimals, booleans and nulls stay
        (
            {
                "type": "contact.updated",
                "attributes": {"a": 1, "b": True, "c": None, "d": "x"},
                **BASE,
            },
            {"attributes": {"a": Decimal(1), "b": True, "c": None, "d": "x"}},
        ),
    ],
)
def test_valid_events(record: dict[str, Any], fields: dict[str, Any]) -> None:
    event = parse_input(record)
    assert isinstance(event, Event)
    assert event.fields == fields
    assert event.occurred_at_ms == T0


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        # unknown type
        (
            {"type": "click", **BASE},
            "unknown type 'click' (expected an event type or 'adjustment')",
        ),
        # no entity
        (
            {"type": "email.open", "event_id": "e", "occurred_at": 1},
            "contact_id or deal_id is required",
        ),
        # a naive timestamp
        (
            {"type": "email.open", **BASE, "occurred_at": "2024-05-06T10:00:00"},
            "occurred_at must be epoch millis or ISO-8601 with an offset, e.g. "
            "2024-05-01T10:00:00Z (got '2024-05-06T10:00:00')",
        ),
        # a boolean is not a timestamp
        (
            {"type": "email.open", **BASE, "occurred_at": True},
            "occurred_at must be epoch millis or ISO-8601 with an offset, e.g. "
            "2024-05-01T10:00:00Z (got true)",
        ),
        # an oversized url
        ({"type": "page_visit", "url": "x" * 4097, **BASE}, "url is longer than 4096 characters"),
        # a non-numeric amount
        (
            {"type": "purchase", "order_id": "o", "amount": "ten", "currency": "EUR", **BASE},
            "amount must be a decimal number greater than -10^18 and less than 10^18 (got 'ten')",
        ),
        # NaN is not an amount
        (
            {"type": "purchase", "order_id": "o", "amount": "NaN", "currency": "EUR", **BASE},
            "amount must be a decimal number greater than -10^18 and less than 10^18 (got 'NaN')",
        ),
        # a lowercase currency
        (
            {"type": "purchase", "order_id": "o", "amount": 1, "currency": "eur", **BASE},
            "currency must be an ISO 4217 code such as EUR (got 'eur')",
        ),
        # a deal event without deal_id
        (
            {"type": "deal.stage_changed", "pipeline": "p", "to_stage": "x", **BASE},
            "deal.stage_changed requires deal_id",
        ),
        # an action contradicting the type
        (
            {"type": "email.open", "action": "click", **BASE},
            "action 'click' contradicts type 'email.open'",
        ),
        # a nested attribute value
        (
            {"type": "contact.updated", "attributes": {"a": [1]}, **BASE},
            "attribute 'a' must be a string, number, boolean or null",
        ),
        # an empty tenant id, under its name or its deprecated old name
        (
            {"type": "email.open", **BASE, "tenant_id": ""},
            "tenant_id must be a non-empty string (got '')",
        ),
        (
            {"type": "email.open", **BASE, "account_id": ""},
            "account_id must be a non-empty string (got '')",
        ),
        # the tenant under both names, and they differ
        (
            {"type": "email.open", **BASE, "tenant_id": "acme", "account_id": "globex"},
            "tenant_id 'acme' and account_id 'globex' (its deprecated old name) differ: send "
            "tenant_id only",
        ),
        # an adjustment with a bad op
        (
            {
                "type": "adjustment",
                "command_id": "c",
                "occurred_at": 1,
                "entity": "contact",
                "entity_id": "c1",
                "score": "s",
                "op": "multiply",
                "points": 2,
            },
            "op must be add, subtract, set or reset (got 'multiply')",
        ),
        # add needs positive points
        (
            {
                "type": "adjustment",
                "command_id": "c",
                "occurred_at": 1,
                "entity": "contact",
                "entity_id": "c1",
                "score": "s",
                "op": "add",
                "points": -2,
            },
            "points of add must be positive (got -2)",
        ),
        # expiry on a set
        (
            {
                "type": "adjustment",
                "command_id": "c",
                "occurred_at": 1,
                "entity": "contact",
                "entity_id": "c1",
                "score": "s",
                "op": "set",
                "points": 2,
                "expires_after": "1d",
            },
            "expires_after is only valid for add and subtract, not set",
        ),
    ],
)
def test_invalid_records(record: dict[str, Any], reason: str) -> None:
    assert parse_input(record) == Invalid(reason)


@pytest.mark.parametrize(
    ("names", "tenant"),
    [
        ({"tenant_id": "acme"}, "acme"),
        ({"account_id": "acme"}, "acme"),  # the deprecated old name (docs/migration.md)
        ({"tenant_id": "acme", "account_id": "acme"}, "acme"),  # both, the same
        ({"tenant_id": "acme", "account_id": None}, "acme"),
        ({"tenant_id": None, "account_id": "acme"}, "acme"),
        ({}, None),  # the default tenant
    ],
)
def test_the_tenant_is_tenant_id_or_its_old_name(names: dict[str, Any], tenant: str | None) -> None:
    event = parsed(type="page_visit", url="/p", **BASE, **names)
    assert type(event) is Event and event.tenant_id == tenant
    command = parsed(type="adjustment", command_id="c", occurred_at=T0, entity="contact",
                     entity_id="c1", score="s", op="add", points=1, **names)  # fmt: skip
    assert type(command) is Adjustment and command.tenant_id == tenant


def test_a_contacts_account_id_attribute_is_its_company_not_the_tenant() -> None:
    event = parsed(type="contact.updated", tenant_id="acme",
                   attributes={"account_id": "initech"}, **BASE)  # fmt: skip
    assert type(event) is Event and event.tenant_id == "acme"
    assert event.fields["attributes"] == {"account_id": "initech"}


def test_adjustment_parsing() -> None:
    command = parse_input(
        {
            "type": "adjustment",
            "command_id": "c",
            "occurred_at": T0,
            "entity": "deal",
            "entity_id": "d",
            "score": "s",
            "op": "subtract",
            "points": 5,
            "expires_after": "2h",
            "reason": "manual",
        }
    )
    assert command == Adjustment(
        "c", None, T0, "deal", "d", "s", "subtract", 5, 7_200_000, "manual"
    )
    assert route(command) == (EntityKey(None, "deal", "d"),)


_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "type",
                "event_id",
                "occurred_at",
                "contact_id",
                "deal_id",
                "account_id",
                "tenant_id",
                "url",
                "amount",
                "currency",
                "order_id",
                "attributes",
                "command_id",
                "entity",
                "entity_id",
                "score",
                "op",
                "points",
                "expires_after",
                "pipeline",
                "to_stage",
                "status",
                "value",
                "action",
            ]
        ),
        _values
        | st.sampled_from(
            [
                "page_visit",
                "purchase",
                "adjustment",
                "contact.updated",
                "deal.stage_changed",
                "email.open",
                "add",
                "set",
                "contact",
            ]
        ),
    )
)
def test_parser_is_total(record: dict[str, Any]) -> None:
    result = parse_input(record)
    assert isinstance(result, Event | Adjustment | Invalid)
