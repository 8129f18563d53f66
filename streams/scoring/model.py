"""The compiled model of a predicted score (docs/plans.md, Predicted scores).

A predicted score's value is a conversion probability in basis points, computed from the
entity's features with the weights of a fitted logistic model (see ``predict``). This module
holds only the validated spec (built by ``plan_predict``); it imports nothing of the core so
that ``plan`` can refer to it. The value itself lives in the score's ledger like any score's:
``rolled`` (the part of a total that no contribution makes) holds it, so ``total`` is the value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final

#: Feature kinds: the value of another score, hits of one of its rules, an attribute equal to a
#: value (0 or 1), a numeric attribute clamped to [min, max].
SCORE: Final = "score"
HITS: Final = "hits"
EQUALS: Final = "equals"
NUMBER: Final = "number"

#: An attribute value a feature compares with (as the plan's ``eq`` conditions do).
Operand = str | Decimal | bool


@dataclass(frozen=True, slots=True)
class Feature:
    """One input of the model, ``weight * value`` in the logit.

    - ``kind == SCORE``: the integer value of score ``score`` (same entity, not predicted);
    - ``kind == HITS``: how many live contributions of rule ``rule`` of score ``score``
      occurred in ``[watermark - within_ms, watermark]`` (``points``: their points summed);
    - ``kind == EQUALS``: 1 if the property ``attribute`` equals ``equals``, else 0;
    - ``kind == NUMBER``: the numeric property ``attribute`` (0 when missing or not a
      number), clamped to ``[low, high]`` and rounded half-even to six decimal places.

    ``attribute`` is a contact attribute's name (``industry``) or a deal property (``stage``,
    ``pipeline``, ``status``, ``value``).
    """

    name: str
    kind: str
    weight: Decimal
    score: str = ""
    rule: str = ""
    within_ms: int = 0
    points: bool = False
    attribute: str = ""
    equals: Operand = ""
    low: Decimal = Decimal(0)
    high: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class Predicted:
    """A predicted score's model: ``model`` (its version, shown by explain), the intercept,
    the features in plan order and the names of the scores they read."""

    model: str
    intercept: Decimal
    features: tuple[Feature, ...]
    sources: tuple[str, ...] = ()
    #: The value of each source score for an entity without its ledger, filled on first use
    #: (a score's empty value depends on its categories and limits only).
    empty: dict[str, Decimal] = field(default_factory=dict, compare=False, hash=False, repr=False)
