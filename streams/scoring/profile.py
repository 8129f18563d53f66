"""Entity properties for state rules: contact attributes and a deal's stage/pipeline/status/value.

Each property is last-writer-wins by event time (a tie goes to the later arrival); a null
attribute value deletes the attribute (kept as a tombstone with its time, so an older update
cannot resurrect it, until compaction drops tombstones older than the lateness horizon).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streams.scoring.events import Event
from streams.scoring.state import EntityState

_DEAL_FIELDS = (
    ("to_stage", "stage"),
    ("pipeline", "pipeline"),
    ("status", "status"),
    ("value", "value"),
)


def update_props(state: EntityState, kind: str, event: Event) -> bool:
    """Apply a profile/deal update to the entity's properties; True if any value changed."""
    if kind == "contact" and event.event_type == "contact.updated":
        updates: Mapping[str, Any] = event.fields["attributes"]
    elif kind == "deal" and event.event_type == "deal.stage_changed":
        fields = event.fields
        updates = {prop: fields[name] for name, prop in _DEAL_FIELDS if name in fields}
    else:
        return False
    at = event.occurred_at_ms
    props = state.props
    changed = False
    for name, value in updates.items():
        current = props.get(name)
        if current is not None and current[1] > at:
            continue
        if current is None or current[0] != value or type(current[0]) is not type(value):
            changed = changed or current is not None or value is not None
        props[name] = (value, at)
    return changed
