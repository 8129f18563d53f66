"""Errors of the scoring core.

Hierarchy::

    ScoringError                 root of every error raised by ``streams.scoring``
    ├── PlanError                the plan is invalid; carries every ``PlanIssue`` found
    └── StateFormatError         a stored entity state cannot be decoded

Bad *input data* is never an exception: the event parser returns ``Invalid(reason)`` and the
engine reports skip reasons as values. An exception from the core means a bad plan, a corrupt
stored state, or a bug, and must be loud.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class ScoringError(Exception):
    """Root of every error raised by the scoring core."""


@dataclass(frozen=True, slots=True)
class PlanIssue:
    """One mistake in a plan, located by file, score, rule and field."""

    source: str
    score: str | None
    rule: str | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = []
        if self.score is not None:
            where.append(f"score {self.score!r}")
        if self.rule is not None:
            where.append(f"rule {self.rule!r}")
        if self.field is not None:
            where.append(f"field {self.field!r}")
        location = ", ".join(where)
        return (
            f"{self.source}: {location}: {self.message}"
            if location
            else (f"{self.source}: {self.message}")
        )


class PlanError(ScoringError):
    """A plan failed validation. ``issues`` lists every mistake found, not just the first."""

    def __init__(self, issues: Sequence[PlanIssue]) -> None:
        self.issues: tuple[PlanIssue, ...] = tuple(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))


class StateFormatError(ScoringError):
    """A serialized entity state is corrupt or of an unknown format version."""
