"""The closed set of input event types (docs/inputs.md) and the fields rules may refer to."""

from __future__ import annotations

from typing import Final, Literal

EntityKind = Literal["contact", "deal", "account"]
#: Kinds input events route to (an account only has roll-up scores, fed by its contacts).
ENTITY_KINDS: Final = ("contact", "deal")
#: Kinds a score may be kept for.
SCORE_KINDS: Final = ("contact", "deal", "account")


def kind_of(name: str) -> EntityKind:
    """A validated kind name (one of ``SCORE_KINDS``) as the literal type."""
    return "contact" if name == "contact" else "deal" if name == "deal" else "account"


EMAIL_ACTIONS: Final = (
    "sent",
    "open",
    "click",
    "reply",
    "forward",
    "bounce",
    "unsubscribe",
    "complaint",
)

#: Own fields of each event type; a ``where`` path or a value-weighted ``points.field`` must
#: start with one of these. ``attributes`` is a map: paths go one level into it.
EVENT_FIELDS: Final[dict[str, frozenset[str]]] = {
    "page_visit": frozenset({"url", "referrer", "title", "session_id"}),
    **{
        f"email.{action}": frozenset({"action", "campaign_id", "message_id", "link_url"})
        for action in EMAIL_ACTIONS
    },
    "purchase": frozenset({"order_id", "amount", "currency"}),
    "deal.stage_changed": frozenset({"pipeline", "from_stage", "to_stage", "status", "value"}),
    "contact.updated": frozenset({"attributes"}),
}
EVENT_TYPES: Final = tuple(EVENT_FIELDS)

#: Fields holding a map of scalars (paths reach exactly one level into them).
MAP_FIELDS: Final = frozenset({"attributes"})

#: The state a ``while`` rule can look at, per entity kind.
STATE_FIELDS: Final[dict[str, frozenset[str]]] = {
    "contact": frozenset({"attributes"}),
    "deal": frozenset({"stage", "pipeline", "status", "value"}),
}

DEAL_STATUSES: Final = ("open", "won", "lost")


def path_problem(path: str, roots: frozenset[str]) -> str | None:
    """Why a dotted ``path`` cannot address one of ``roots`` (None if it can)."""
    parts = path.split(".")
    if any(not part for part in parts):
        return f"path {path!r} has an empty segment"
    head = parts[0]
    if head not in roots:
        return f"unknown field {head!r} (known: {', '.join(sorted(roots))})"
    if head in MAP_FIELDS:
        if len(parts) != 2:
            return f"path {path!r} must name one entry of the map, e.g. '{head}.industry'"
    elif len(parts) != 1:
        return f"field {head!r} is not a map; {path!r} cannot reach into it"
    return None
