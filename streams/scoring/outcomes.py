"""What the engine returns: score changes (docs/consumers.md), per-score results, the outcome."""

from __future__ import annotations

import uuid
from enum import StrEnum
from hashlib import sha1
from typing import Any, NamedTuple

from streams.scoring.state import EntityState

#: Namespace of deterministic change ids (uuid5 over tenant, entity, score and seq).
CHANGE_NAMESPACE = uuid.UUID("6f1c1d1e-5b0e-4f57-9d57-3c0a3f0f7a11")
_NAMESPACE_BYTES = CHANGE_NAMESPACE.bytes


def uuid5_text(name: str) -> str:
    """``str(uuid.uuid5(CHANGE_NAMESPACE, name))`` without the ``UUID`` object (the shell asks
    for one per published change): SHA-1 of the namespace and the name, the version (5) and
    variant (RFC 4122) bits set, as 8-4-4-4-12 hex digits."""
    digest = bytearray(sha1(_NAMESPACE_BYTES + name.encode()).digest()[:16])  # noqa: S324 - uuid5
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class Cause(StrEnum):
    """Why a score changed."""

    RULE = "rule"
    EXPIRY = "expiry"
    ADJUSTMENT = "adjustment"
    STATE = "state"
    DEFERRED = "deferred"
    TIER = "tier"  # the record of a tier change that follows the change that moved the tier
    DECAY = "decay"  # a decay check moved the integer total (``decay``)
    INACTIVITY = "inactivity"  # a deduction for a silence, or a late event undoing one
    ROLLUP = "rollup"  # a member contact's value, or its membership, moved a roll-up
    RECOMPUTE = "recompute"  # a tenant's new plan recomputed the score by replay (``recompute``)
    PREDICTED = "predicted"  # a predicted score's probability moved (``predict``)


CAUSES = tuple(Cause)


class Verdict(StrEnum):
    """What happened to an item for one score (Prometheus ``outcome`` label values)."""

    SCORED = "scored"  # at least one rule awarded (possibly 0 points), or state rules moved
    DEFERRED = "deferred"  # awards held until the quiet window ends
    DUPLICATE = "duplicate"  # event_id / command_id already applied to this entity
    TOO_LATE = "too_late"  # older than the entity's watermark minus the plan's lateness
    QUIET = "quiet"  # quiet hours with policy skip
    NO_MATCH = "no_match"  # no rule of the score matched
    STATIC = "static"  # a repeat: once rule had already awarded in this epoch
    CAPPED = "capped"  # the rule's cap window was full
    EXPIRED = "expired"  # the award would already have expired at `now`
    NO_VALUE = "no_value"  # value-weighted points: the field is missing or not a number
    BEFORE_RESET = "before_reset"  # the item is older than the score's last set/reset
    ADJUSTED = "adjusted"  # an adjustment was applied
    SUPERSEDED = "superseded"  # a set/reset older than the current epoch: recorded only
    UNKNOWN_SCORE = "unknown_score"  # adjustment for a score the plan (entity) does not have


class ScoreChange(NamedTuple):
    """A ``score-changed`` record (docs/consumers.md) minus ``emitted_at``, which the shell adds.

    An immutable named tuple rather than a frozen dataclass: it is built on the hot path and a
    tuple is several times cheaper to construct.
    """

    tenant_id: str | None
    entity: str
    entity_id: str
    score: str
    seq: int
    old_value: int
    new_value: int
    cause: Cause
    rule_ids: tuple[str, ...]
    source_event_id: str
    occurred_at_ms: int
    thresholds: tuple[tuple[str, str], ...]
    plan_version: str
    #: The score's tier before and after (None without tiers); differ only across a tier change.
    tier_before: str | None
    tier_after: str | None

    @property
    def delta(self) -> int:
        return self.new_value - self.old_value

    @property
    def change_id(self) -> str:
        """Deterministic: the same (tenant, entity, score, seq) always gets the same id."""
        name = "\x1f".join(
            (self.tenant_id or "", self.entity, self.entity_id, self.score, str(self.seq))
        )
        return uuid5_text(name)

    def to_dict(self, *, emitted_at_ms: int | None = None) -> dict[str, Any]:
        """JSON-friendly ``score-changed`` shape (timestamps as epoch millis)."""
        record: dict[str, Any] = {
            "change_id": self.change_id,
            "tenant_id": self.tenant_id,
            "entity": self.entity,
            "entity_id": self.entity_id,
            "score": self.score,
            "seq": self.seq,
            "old_value": self.old_value,
            "new_value": self.new_value,
            "delta": self.delta,
            "cause": str(self.cause),
            "rule_ids": list(self.rule_ids),
            "source_event_id": self.source_event_id or None,  # none for decay checks
            "occurred_at": self.occurred_at_ms,
            "thresholds": [{"name": n, "direction": d} for n, d in self.thresholds],
            "plan_version": self.plan_version,
            "tier_before": self.tier_before,
            "tier_after": self.tier_after,
        }
        if emitted_at_ms is not None:
            record["emitted_at"] = emitted_at_ms
        return record


class ScoreResult(NamedTuple):
    """Per score: the verdict and the points awarded by each rule (for metrics)."""

    score: str
    verdict: Verdict
    awards: tuple[tuple[str, int], ...] = ()


class Outcome(NamedTuple):
    """Result of ``apply``/``advance`` (a named tuple: one is built per item and entity).

    ``changes``: score changes in the order they happened (expiries/deferred awards due
    before the item first).
    """

    state: EntityState
    changes: tuple[ScoreChange, ...] = ()
    results: tuple[ScoreResult, ...] = ()
    #: Member updates a contact sends to its deals' and account's roll-ups (``rollup``), as
    #: (target entity key, ``rollup.MemberUpdate``) pairs.
    forwards: tuple[Any, ...] = ()


#: Builds the named tuples above without their generated ``__new__`` (a Python function, even in
#: the compiled build); the hot path makes several per item.
_new = tuple.__new__


def score_result(
    score: str, verdict: Verdict, awards: tuple[tuple[str, int], ...] = ()
) -> ScoreResult:
    return _new(ScoreResult, (score, verdict, awards))


def score_change(*fields: Any) -> ScoreChange:
    """A ``ScoreChange`` from its fields, in declaration order."""
    return _new(ScoreChange, fields)


def outcome(
    state: EntityState,
    changes: tuple[ScoreChange, ...] = (),
    results: tuple[ScoreResult, ...] = (),
    forwards: tuple[Any, ...] = (),
) -> Outcome:
    return _new(Outcome, (state, changes, results, forwards))
