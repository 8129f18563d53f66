"""Output records: ``score-changed`` (SPEC §5) and the compacted ``scores`` topic."""

from __future__ import annotations

import json
from typing import Any

from streams.scoring import EntityKey, EntityState, Plan, ScoreChange, category_values, reached


def output_key(account_id: str | None, entity: str, entity_id: str, score: str) -> bytes:
    """Tenant + entity + score, as a JSON array: readable and unambiguous."""
    return json.dumps([account_id, entity, entity_id, score], separators=(",", ":")).encode()


def change_key(change: ScoreChange) -> bytes:
    return output_key(change.account_id, change.entity, change.entity_id, change.score)


def change_record(change: ScoreChange, *, emitted_at_ms: int) -> dict[str, Any]:
    return change.to_dict(emitted_at_ms=emitted_at_ms)


def score_records(
    plan: Plan, key: EntityKey, state: EntityState, scores: set[str], *, updated_at_ms: int
) -> list[tuple[bytes, dict[str, Any]]]:
    """Latest value of each named score of the entity, for the compacted ``scores`` topic."""
    out = []
    for name in sorted(scores):
        score, ledger = plan.by_name.get(name), state.scores.get(name)
        if score is None or ledger is None:
            continue
        out.append(
            (
                output_key(key.account_id, key.kind, key.entity_id, name),
                {
                    "account_id": key.account_id,
                    "entity": key.kind,
                    "entity_id": key.entity_id,
                    "score": name,
                    "value": ledger.total,
                    "seq": ledger.seq,
                    "categories": category_values(score, ledger.sums),
                    "thresholds_reached": list(reached(score, ledger.total)),
                    "updated_at": updated_at_ms,
                    "plan_version": plan.version,
                },
            )
        )
    return out
