"""Validation of a plan's ``matrices`` (see ``matrix``)."""

from __future__ import annotations

from collections.abc import Mapping

from streams.scoring.catalog import SCORE_KINDS, kind_of
from streams.scoring.plan.checks import Context, fields_of, text
from streams.scoring.plan.spec import Matrix, Score
from streams.scoring.shown import shown

MATRIX_FIELDS = ("name", "description", "entity", "rows", "cols", "labels")


def matrices_of(ctx: Context, raw: object, scores: Mapping[str, Score]) -> tuple[Matrix, ...]:
    """``matrices: [{name, entity, rows: SCORE, cols: SCORE, labels: [[...], ...]}]``."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        ctx.report("matrices", "must be a list of {name, entity, rows, cols, labels}")
        return ()
    out: list[Matrix] = []
    names: set[str] = set()
    for i, item in enumerate(raw):
        matrix = _matrix(ctx, item, f"matrices[{i}]", scores)
        if matrix is None:
            continue
        if matrix.name in names or matrix.name in scores:
            taken = f"{shown(matrix.name)} is already the name of a score or matrix"
            ctx.report(f"matrices[{i}].name", taken)
            continue
        names.add(matrix.name)
        out.append(matrix)
    return tuple(out)


def _matrix(ctx: Context, raw: object, where: str, scores: Mapping[str, Score]) -> Matrix | None:
    spec = fields_of(ctx, raw, where, allowed=MATRIX_FIELDS,
                     required=("name", "entity", "rows", "cols", "labels"))  # fmt: skip
    if spec is None:
        return None
    failed = len(ctx.issues)
    name = text(ctx, spec["name"], f"{where}.name") if "name" in spec else None
    entity = (text(ctx, spec["entity"], f"{where}.entity", choices=SCORE_KINDS)
              if "entity" in spec else None)  # fmt: skip
    shape: list[int] = []
    for axis in ("rows", "cols"):
        named = spec.get(axis)
        score = scores.get(named) if isinstance(named, str) else None
        if score is None:
            ctx.report(
                f"{where}.{axis}", f"must name a score of the plan (got {shown(spec.get(axis))})"
            )
        elif entity is not None and score.entity != entity:
            ctx.report(f"{where}.{axis}", f"score {shown(score.name)} is a {score.entity} score, "
                                          f"not a {entity} one")  # fmt: skip
        elif not score.tiers:
            ctx.report(f"{where}.{axis}", f"score {shown(score.name)} has no tiers: a matrix "
                                          "crosses the tiers of two scores")  # fmt: skip
        else:
            shape.append(len(score.tiers))
    labels = spec.get("labels")
    cells: list[tuple[str, ...]] = []
    if len(shape) == 2:
        rows, cols = shape
        if not isinstance(labels, list) or len(labels) != rows:
            ctx.report(f"{where}.labels", f"must be {rows} rows (one per tier of "
                                          f"{shown(spec['rows'])}) of {cols} labels")  # fmt: skip
        else:
            for r, row in enumerate(labels):
                if not isinstance(row, list) or len(row) != cols:
                    wanted = (
                        f"must be a list of {cols} labels (one per tier of {shown(spec['cols'])})"
                    )
                    ctx.report(f"{where}.labels[{r}]", wanted)
                    continue
                cells.append(tuple(text(ctx, label, f"{where}.labels[{r}][{c}]") or ""
                                   for c, label in enumerate(row)))  # fmt: skip
    if len(ctx.issues) != failed or name is None or entity is None or len(shape) != 2:
        return None
    return Matrix(name, kind_of(entity), spec["rows"], spec["cols"], tuple(cells))
