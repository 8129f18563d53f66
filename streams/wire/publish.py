"""Output records: ``score-changed`` (docs/consumers.md) and the compacted ``scores`` topic."""

from __future__ import annotations

from json.encoder import encode_basestring_ascii as _quote  # the C function where there is one
from typing import Any

from streams.scoring import (
    EntityKey,
    EntityState,
    Plan,
    Score,
    ScoreChange,
    category_values,
    reached,
)
from streams.scoring.aggregate import tier_of, total
from streams.scoring.decay import decayed_categories


def output_key(tenant_id: str | None, entity: str, entity_id: str, score: str) -> bytes:
    """Tenant + entity + score, as a JSON array: readable and unambiguous. The bytes of
    ``json.dumps([tenant_id, entity, entity_id, score], separators=(",", ":"))``, each string
    quoted by the JSON encoder's own C function: one key per published change, and
    ``json.dumps`` costs ten times as much."""
    tenant = "null" if tenant_id is None else _quote(tenant_id)
    return f"[{tenant},{_quote(entity)},{_quote(entity_id)},{_quote(score)}]".encode()


def change_key(change: ScoreChange) -> bytes:
    return output_key(change.tenant_id, change.entity, change.entity_id, change.score)


def change_record(change: ScoreChange, *, emitted_at_ms: int | None) -> dict[str, Any]:
    """The public ``score-changed`` shape (the tenant is ``tenant_id``)."""
    return change.to_dict(emitted_at_ms=emitted_at_ms)


def score_view(score: Score, state: EntityState) -> dict[str, Any]:
    """The one view of a score's current value: the HTTP API, the ``scores`` topic and the
    offline scorer all show these fields (a score the entity never touched shows its empty total).
    """
    ledger = state.scores.get(score.name)
    sums = ledger.sums if ledger is not None else {}
    value = ledger.total if ledger is not None else total(score, sums)
    return {
        "value": value,
        "seq": ledger.seq if ledger is not None else 0,
        "categories": (
            decayed_categories(score, ledger)
            if score.decays and ledger is not None
            else category_values(score, sums)
        ),
        "thresholds_reached": list(reached(score, value)),
        "tier": tier_of(score, value),
    }


def score_records(
    plan: Plan, key: EntityKey, state: EntityState, scores: set[str], *, updated_at_ms: int
) -> list[tuple[bytes, dict[str, Any]]]:
    """Latest value of each named score of the entity, for the compacted ``scores`` topic."""
    out = []
    for name in sorted(scores):
        score = plan.by_name.get(name)
        if score is None or name not in state.scores:
            continue
        out.append(
            (
                output_key(key.tenant_id, key.kind, key.entity_id, name),
                {
                    "tenant_id": key.tenant_id,
                    "entity": key.kind,
                    "entity_id": key.entity_id,
                    "score": name,
                    **score_view(score, state),
                    "updated_at": updated_at_ms,
                    "plan_version": plan.version,
                },
            )
        )
    return out
