"""Matrices (docs/plans.md): the labelled cell of two tiered scores of an entity (HubSpot's A1-C3).

A matrix has a ledger of its own in the entity's state, under its name: ``total`` is the
current cell's position (``row * columns + column``, rows and columns in tier order) and
``seq`` counts its changes. Each change of either score that moves the entity into another
cell is followed (after its own tier record) by a ``score-changed`` record of the matrix:
score = the matrix's name, cause ``tier``, ``old_value``/``new_value`` the positions,
``tier_before``/``tier_after`` the labels, and the rule ids, source and time of that change.
The changes are walked in their order, so a time step that moves a score twice gives two
records, online (one due time at a time) and offline (all due times at once) alike.
"""

from __future__ import annotations

from streams.scoring.aggregate import tier_index, total
from streams.scoring.events import EntityKey
from streams.scoring.outcomes import Cause, ScoreChange, score_change
from streams.scoring.plan.spec import Matrix, Plan, Score
from streams.scoring.state import EntityState, Ledger


def _value(entity: EntityState, score: Score) -> int:
    ledger = entity.scores.get(score.name)
    return ledger.total if ledger is not None else total(score, {})


def position(matrix: Matrix, plan: Plan, entity: EntityState) -> int:
    """The entity's current cell of ``matrix``."""
    rows, cols = plan.by_name[matrix.rows], plan.by_name[matrix.cols]
    return tier_index(rows, _value(entity, rows)) * len(cols.tiers) + tier_index(
        cols, _value(entity, cols)
    )


def label(matrix: Matrix, at: int) -> str:
    width = len(matrix.labels[0])
    return matrix.labels[at // width][at % width]


def follow(entity: EntityState, key: EntityKey, plan: Plan, changes: list[ScoreChange]) -> None:
    """Insert a record per cell move of each matrix into ``changes`` (in time order), right
    after the change that made it (and that change's tier record)."""
    for matrix in plan.matrices_by_kind.get(key.kind, ()):
        ledger = entity.scores.get(matrix.name)
        if ledger is None:
            ledger = entity.scores[matrix.name] = Ledger()
            ledger.total = _empty(matrix, plan)
        if any(c.score == matrix.rows or c.score == matrix.cols for c in changes):
            _walk(matrix, plan, entity, key, ledger, changes)


def _walk(
    matrix: Matrix,
    plan: Plan,
    entity: EntityState,
    key: EntityKey,
    ledger: Ledger,
    changes: list[ScoreChange],
) -> None:
    rows, cols = plan.by_name[matrix.rows], plan.by_name[matrix.cols]
    values: dict[str, int] = {}
    for score in (rows, cols):  # before the first of its changes (or all along: no change)
        first = next((c for c in changes if c.score == score.name), None)
        values[score.name] = first.old_value if first is not None else _value(entity, score)
    out: list[ScoreChange] = []
    held: ScoreChange | None = None  # a record waiting for the tier record before it
    for i, change in enumerate(changes):
        out.append(change)
        if held is not None:
            out.append(held)
            held = None
        if change.score not in values or change.cause is Cause.TIER:
            continue
        values[change.score] = change.new_value
        at = tier_index(rows, values[rows.name]) * len(cols.tiers) + tier_index(
            cols, values[cols.name]
        )
        if at == ledger.total:
            continue
        old = ledger.total
        ledger.seq += 1
        ledger.total = at
        record = score_change(
            key.tenant_id, key.kind, key.entity_id, matrix.name, ledger.seq, old, at,
            Cause.TIER, change.rule_ids, change.source_event_id, change.occurred_at_ms, (),
            plan.version, label(matrix, old), label(matrix, at),
        )  # fmt: skip
        following = changes[i + 1] if i + 1 < len(changes) else None
        if (
            following is not None
            and following.score == change.score
            and (following.cause is Cause.TIER)
        ):
            held = record
        else:
            out.append(record)
    changes[:] = out


def _empty(matrix: Matrix, plan: Plan) -> int:
    """The cell of an entity none of whose scores has moved."""
    rows, cols = plan.by_name[matrix.rows], plan.by_name[matrix.cols]
    return tier_index(rows, total(rows, {})) * len(cols.tiers) + tier_index(cols, total(cols, {}))


def cells(plan: Plan, kind: str, entity: EntityState | None) -> dict[str, str]:
    """Each matrix of the entity kind: the entity's current label (for the score views)."""
    out: dict[str, str] = {}
    for matrix in plan.matrices_by_kind.get(kind, ()):
        if entity is None:
            out[matrix.name] = label(matrix, _empty(matrix, plan))
        else:
            out[matrix.name] = label(matrix, position(matrix, plan, entity))
    return out
