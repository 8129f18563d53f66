"""Roll-ups (docs/plans.md, Roll-ups): deal and account scores fed by their contacts' scores.

A roll-up score (``rollup: {from: SCORE, aggregate: sum | max | top, k}``) keeps, per member
contact, the latest value of the contact score ``from``, and adds the aggregate of those values
(``top``: the sum of the ``k`` highest) to its own points before its limits. An account score
is its roll-up alone; a deal score may have rules of its own as well.

Membership: a contact is counted in the account named by its attribute ``account_id`` (last
writer wins by event time, as every attribute; an unset or empty attribute: no account), and
in every deal of its events that carried that deal. When the attribute changes, the contact
leaves the old account and joins the new one.

Each partition keeps only its own entities' states, so a contact never writes a deal or an
account: it sends them *member updates*, which the stream shell routes through the
entity-events topic to the target's partition (in the same transaction as the contact's own
state). An update carries the contact's version (``EntityState.rv``, one more per update the
contact sends) and its values, or ``None`` when it leaves. A target applies an update only if
its version is newer than the member's last one, and keeps the version of a left member (a
tombstone: ``Ledger.versions`` has it, ``Ledger.members`` no longer), so a duplicate or a stale
update changes nothing: the roll-up is the aggregate of the members' latest values whatever
order updates arrive in. The contact's own value is exact under any arrival order of its events
(docs/plans.md, Arrival order), so the roll-up is too.

A change of a roll-up score has cause ``rollup``, rule id ``rollup``, and the source event and
time of the contact change (or profile update) that caused it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import NamedTuple

from streams.scoring.aggregate import total
from streams.scoring.events import Adjustment, EntityKey, Event, Item
from streams.scoring.outcomes import ScoreChange
from streams.scoring.plan.spec import Plan, Rollup
from streams.scoring.state import NO_MEMBERS, NO_VERSIONS, EntityState, Ledger

RULE = "rollup"
#: The contact attribute naming the account the contact belongs to.
MEMBERSHIP = "account_id"


class MemberUpdate(NamedTuple):
    """A contact's values for the roll-ups of one target (None: the contact left it)."""

    contact_id: str
    version: int
    values: tuple[tuple[str, int], ...] | None
    source_id: str
    occurred_at_ms: int


class Forward(NamedTuple):
    """A member update on its way to a deal or account (``target``)."""

    target: EntityKey
    update: MemberUpdate


_new = tuple.__new__
_NONE_STORED: dict[str, tuple[int, int | None]] = {}  # (``stored_members``: never changed)


def account_of(entity: EntityState) -> str | None:
    """The account the contact's attributes name (None: no account)."""
    prop = entity.props.get(MEMBERSHIP)
    if prop is None:
        return None
    value = prop[0]
    if type(value) is str:
        return value or None
    if type(value) is Decimal:
        return str(value)
    return None  # booleans and null name no account


def forwards(
    entity: EntityState,
    key: EntityKey,
    plan: Plan,
    changes: list[ScoreChange],
    deal_id: str | None,
    source_id: str,
    at_ms: int,
) -> tuple[Forward, ...]:
    """The member updates a contact sends after an item or a time step (and its links kept)."""
    out: list[Forward] = []
    sources = plan.rollup_sources.get("account")
    if sources:
        account = account_of(entity)
        old = entity.account_link
        moved = _moved(changes, sources)
        if account != old:
            if old is not None:
                out.append(_send(entity, key, "account", old, None, source_id, at_ms))
            if account is not None:
                values = _values(entity, plan, sources)
                out.append(_send(entity, key, "account", account, values, source_id, at_ms))
            entity.account_link = account
        elif account is not None and moved is not None:
            values = _values(entity, plan, sources)
            out.append(_send(entity, key, "account", account, values, moved.source_event_id,
                             moved.occurred_at_ms))  # fmt: skip
    sources = plan.rollup_sources.get("deal")
    if sources:
        moved = _moved(changes, sources)
        if moved is not None and entity.deal_links:
            values = _values(entity, plan, sources)
            for deal in entity.deal_links:
                out.append(_send(entity, key, "deal", deal, values, moved.source_event_id,
                                 moved.occurred_at_ms))  # fmt: skip
        if deal_id is not None and deal_id not in entity.deal_links:
            if entity.deal_links:
                entity.deal_links.append(deal_id)
            else:  # (a new list: the empty one may be shared, ``state.NO_LINKS``)
                entity.deal_links = [deal_id]
            values = _values(entity, plan, sources)
            out.append(_send(entity, key, "deal", deal_id, values, source_id, at_ms))
    return tuple(out)


def after_item(
    entity: EntityState, key: EntityKey, plan: Plan, changes: list[ScoreChange], item: Item
) -> tuple[Forward, ...]:
    """``forwards`` after a contact's event (which may carry a deal) or adjustment."""
    if type(item) is Event:
        return forwards(entity, key, plan, changes, item.deal_id, item.event_id,
                        item.occurred_at_ms)  # fmt: skip
    assert type(item) is Adjustment  # noqa: S101 - Item is a closed union
    return forwards(entity, key, plan, changes, None, item.command_id, item.occurred_at_ms)


def _moved(changes: list[ScoreChange], sources: tuple[str, ...]) -> ScoreChange | None:
    """The last change that moved the value of one of ``sources`` (None: none did)."""
    for change in reversed(changes):
        if change.score in sources and change.new_value != change.old_value:
            return change
    return None


def _values(
    entity: EntityState, plan: Plan, sources: tuple[str, ...]
) -> tuple[tuple[str, int], ...]:
    out: list[tuple[str, int]] = []
    for name in sources:
        ledger = entity.scores.get(name)
        out.append((name, ledger.total if ledger is not None else total(plan.by_name[name], {})))
    return tuple(out)


def _send(
    entity: EntityState,
    key: EntityKey,
    kind: str,
    target_id: str,
    values: tuple[tuple[str, int], ...] | None,
    source_id: str,
    at_ms: int,
) -> Forward:
    entity.rv += 1
    # (tuple.__new__: a named tuple's own __new__ is interpreted Python, even when compiled)
    target = _new(EntityKey, (key.tenant_id, "deal" if kind == "deal" else "account", target_id))
    update = _new(MemberUpdate, (key.entity_id, entity.rv, values, source_id, at_ms))
    return _new(Forward, (target, update))


def admit(ledger: Ledger, rollup: Rollup, update: MemberUpdate) -> bool:
    """Record a member update in a roll-up's ledger; False if it is not newer than the last."""
    versions = ledger.versions
    contact = update.contact_id
    previous = versions.get(contact)
    if previous is not None and previous >= update.version:
        return False
    if versions is NO_VERSIONS:  # (never added to: shared, ``state.NO_VERSIONS``)
        versions = ledger.versions = {}
    versions[contact] = update.version
    members = ledger.members
    old = members.get(contact)
    value = 0
    if update.values is None:  # left: no longer counted
        if old is not None:
            del members[contact]
    else:
        for name, points in update.values:
            if name == rollup.source:
                value = points
        if members is NO_MEMBERS:  # (never added to: shared, ``state.NO_MEMBERS``)
            members = ledger.members = {}
        members[contact] = value
    if rollup.aggregate == "sum":
        ledger.rolled += value - (old or 0)
    else:
        ledger.rolled = aggregate(rollup, members)
    return True


def aggregate(rollup: Rollup, members: dict[str, int]) -> int:
    """The roll-up's part: sum, max or top-k sum of the members' values (0 if none)."""
    if not members:
        return 0
    if rollup.aggregate == "top":  # the k highest, in one pass without a list of them all
        k = rollup.k
        top: list[int] = []  # highest first
        for value in members.values():
            if len(top) < k or value > top[-1]:
                if len(top) == k:
                    top.pop()
                i = len(top)
                while i > 0 and top[i - 1] < value:
                    i -= 1
                top.insert(i, value)
        return sum(top)
    if rollup.aggregate == "sum":
        return sum(members.values())
    return max(members.values())


def counted(rollup: Rollup, members: dict[str, int]) -> list[tuple[str, int, bool]]:
    """The members as (contact id, value, counted by the aggregate), highest first."""
    live = sorted(members.items(), key=lambda item: (-item[1], item[0]))
    limit = len(live) if rollup.aggregate == "sum" else 1 if rollup.aggregate == "max" else rollup.k
    return [(contact, value, i < limit) for i, (contact, value) in enumerate(live)]


def stored_members(ledger: Ledger) -> dict[str, tuple[int, int | None]]:
    """A roll-up's members as stored: contact id -> (the version of its last update, its value;
    None once it left). A ledger with none stores its shared empty map (no dict per store)."""
    members = ledger.members
    versions = ledger.versions
    if not versions:
        return _NONE_STORED
    return {contact: (version, members.get(contact)) for contact, version in versions.items()}


def restore_members(ledger: Ledger, wire: dict[str, tuple[int, int | None]]) -> None:
    """Set a ledger's members and versions from their stored form (``stored_members``)."""
    if not wire:
        ledger.members, ledger.versions = NO_MEMBERS, NO_VERSIONS
        return
    ledger.versions = {contact: version for contact, (version, _) in wire.items()}
    ledger.members = {contact: value for contact, (_, value) in wire.items() if value is not None}
