"""Entity properties for state rules: contact attributes and a deal's stage/pipeline/status/value.

Each property is last-writer-wins by event time (a tie goes to the later arrival); a null
attribute value deletes the attribute (kept as a tombstone with its time, so an older update
cannot resurrect it, until compaction drops tombstones older than the lateness horizon).

When the plan has state rules for the entity kind, the earlier values of each property are
kept too (``EntityState.past``), including updates that arrived after a newer one: an update
that arrives out of order changes what the entity looked like between its time and the next
update, and state rules are replayed on that history (``view_at``, ``holds``). Compaction
keeps the history from the lateness horizon on, plus the value each property had then
(``prune_history``); ``EntityState.floor_ms`` says from when the history is complete.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import Any

from streams.scoring.events import Event
from streams.scoring.segments import unseal
from streams.scoring.state import EntityState, Prop

_DEAL_FIELDS = (
    ("to_stage", "stage"),
    ("pipeline", "pipeline"),
    ("status", "status"),
    ("value", "value"),
)


def _at(prop: Prop) -> int:
    return prop[1]


def update_props(state: EntityState, kind: str, event: Event, *, history: bool) -> bool | None:
    """Apply a profile/deal update to the entity's properties.

    Returns None if the event updates no properties, True if it is older than the newest
    property time (out of order: state rules must be replayed on the history), else False.
    ``history``: keep earlier values (the plan has state rules for this kind).
    """
    if kind == "contact" and event.event_type == "contact.updated":
        updates: dict[str, Any] = event.fields["attributes"]
    elif kind == "deal" and event.event_type == "deal.stage_changed":
        fields = event.fields
        updates = {prop: fields[name] for name, prop in _DEAL_FIELDS if name in fields}
    else:
        return None
    at = event.occurred_at_ms
    props = state.props
    newest = max((prop[1] for prop in props.values()), default=at)
    past = state.past
    for name, value in updates.items():
        current = props.get(name)
        if current is not None and current[1] > at:
            if history:
                where = _insert(past.setdefault(name, []), (value, at))
                if where < state.past_sealed.get(name, 0):  # among values sealed (``segments``)
                    unseal(state)
            continue
        if history and current is not None and current[1] < at:
            past.setdefault(name, []).append(current)
        props[name] = (value, at)
    return at < newest


def _insert(older: list[Prop], prop: Prop) -> int:
    """Insert into a time-sorted history; at an equal time the later arrival wins. Returns
    where it went."""
    i = bisect_left(older, prop[1], key=_at)
    if i < len(older) and older[i][1] == prop[1]:
        older[i] = prop
    else:
        older.insert(i, prop)
    return i


def view_at(state: EntityState, kind: str, at_ms: int) -> dict[str, object]:
    """What ``while`` conditions saw right after the updates at ``at_ms`` (exact from
    ``floor_ms`` on), in the shape of ``EntityState.view``."""
    live: dict[str, object] = {}
    past = state.past
    for name, (value, at) in state.props.items():
        if at > at_ms:
            value = None
            older = past.get(name)
            if older:
                i = bisect_right(older, at_ms, key=_at)
                if i:
                    value = older[i - 1][0]
        if value is not None:
            live[name] = value
    return {"attributes": live} if kind == "contact" else live


def update_times(state: EntityState, *, since_ms: int, before_ms: int | None = None) -> list[int]:
    """Distinct times of property updates in ``[since_ms, before_ms)``, newest first."""
    times = {at for _, at in state.props.values()}
    for older in state.past.values():
        times.update(at for _, at in older)
    return sorted(
        (t for t in times if t >= since_ms and (before_ms is None or t < before_ms)),
        reverse=True,
    )


def updated_between(state: EntityState, since_ms: int, before_ms: int) -> bool:
    """Whether any property update time is in ``[since_ms, before_ms)`` (``update_times``
    without building the list: compaction asks it of most entities, and most say no)."""
    for _, at in state.props.values():
        if since_ms <= at < before_ms:
            return True
    for older in state.past.values():
        for _, at in older:
            if since_ms <= at < before_ms:
                return True
    return False


def history_to_prune(state: EntityState, horizon_ms: int) -> bool:
    """Whether ``prune_history`` would drop a value: else compaction leaves the history, its
    floor and the anchors as they are (the history is still complete from that floor)."""
    props = state.props
    for name, older in state.past.items():
        current = props.get(name)
        if current is None or current[1] < horizon_ms:
            return True
        if len(older) > 1 and older[1][1] < horizon_ms:
            return True  # older[0] is before the value in force at the horizon
        if older and older[0][1] < horizon_ms and older[0][0] is None:
            return True  # a deletion in force at the horizon is not kept
    return False


def prune_history(state: EntityState, horizon_ms: int) -> None:
    """Keep the history from ``horizon_ms`` on, plus each property's value at that time."""
    past: dict[str, list[Prop]] = {}
    changed = False
    for name, older in state.past.items():
        current = state.props.get(name)
        if current is None or current[1] < horizon_ms:
            changed = True
            continue  # the current value was already in force at the horizon
        i = bisect_left(older, horizon_ms, key=_at)
        kept = older[i:]
        if i and older[i - 1][0] is not None:
            kept.insert(0, older[i - 1])
        if kept:
            past[name] = kept
        changed = changed or len(kept) != len(older)
    state.past = past
    if changed:
        unseal(state)  # values sealed in segments are gone (``segments``)
    state.floor_ms = max(state.floor_ms, horizon_ms)
