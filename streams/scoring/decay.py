"""Decay (docs/plans.md): a decaying score's value is a fold of decayed contributions at an instant.

A contribution of a rule with ``decay`` keeps its full ``points`` in the ledger (and in the
category sums); its value at instant ``t`` is ``points * factor(t - occurred_at)`` counted in
millionths of a point, each rounded half-even on its own (so a sum of them is exact and does
not depend on order). At ``t``:

    category value = clamp(sum of its points, less what decay took from them, min, max)
    total          = clamp(round_half_even(sum of category values + uncategorised), limits)

all in millionths until the one rounding to whole points. A contribution whose value has
reached 0 at an evaluation leaves the state (decay only shrinks values, so it stays 0); until
then it is kept whole, never folded.

When the total is evaluated (``Ledger.decayed_ms``): at each change of the ledger (an
event, adjustment, expiry or deferred award, at the later of its time and the last evaluation:
the instant never goes back), and at decay checks (``Ledger.decay_due_ms``): the next
multiple of the score's ``decay_granularity`` (UTC, from the epoch) or, if decay makes the
score cross a threshold or move to another tier before that, the first millisecond it does
(found by bisection, which is exact when the total moves one way between two checks, as it
does when the decaying points all have one sign). A check publishes a change with cause
``decay`` if the integer total moved.
"""

from __future__ import annotations

import math
from typing import cast

from streams.scoring.aggregate import (
    clamp,
    div_half_even,
    round_half_even,
    scaled_clamp,
    tier_of,
    unlimited_total,
)
from streams.scoring.contribs import cooked, cooked_list, raw
from streams.scoring.decay_fast import fast
from streams.scoring.decay_memo import MICRO, NO_MEMO, Memo, micro_value
from streams.scoring.ledger import forget
from streams.scoring.plan.spec import Score
from streams.scoring.state import (
    C_CATEGORY,
    C_EXPIRES,
    C_OCCURRED,
    C_POINTS,
    C_RULE,
    Contribution,
    Ledger,
    Raw,
)

#: ``evaluate``'s answer: (total, down, up, earliest expiry).
Evaluation = tuple[int, int, int, int | None]


def micro_sums(score: Score, ledger: Ledger, at_ms: int) -> dict[str | None, int]:
    """Each category's (None: uncategorised) unclamped sum at ``at_ms``, in millionths."""
    sums = {category: points * MICRO for category, points in ledger.sums.items()}
    decays = score.decays
    run: str | None = None  # (a run of one category, as in ``evaluate``)
    run_loss = 0
    for contrib in raw(ledger.contribs):
        decay = decays.get(cast(str, contrib[C_RULE]))
        if decay is not None:
            category = cast("str | None", contrib[C_CATEGORY])
            if category is not run:
                if run_loss:
                    sums[run] -= run_loss
                run, run_loss = category, 0
            points = cast(int, contrib[C_POINTS])
            age_ms = at_ms - cast(int, contrib[C_OCCURRED])
            run_loss += points * MICRO - micro_value(points, decay, age_ms)
    if run_loss:
        sums[run] -= run_loss
    return sums


def decayed_total(score: Score, ledger: Ledger, at_ms: int) -> int:
    """The score's integer value at ``at_ms`` (see the module's docstring); from the memo
    when it decides it (``decay_memo``: the search for a crossing asks at many instants)."""
    known = fast(score, ledger, at_ms)
    if known is not None:
        return known[0]
    micro = unlimited_total(score, micro_sums(score, ledger, at_ms), MICRO)
    return clamp(div_half_even(micro, MICRO) + ledger.rolled, score.min, score.max)


def evaluate(score: Score, ledger: Ledger, at_ms: int, drop: bool = True) -> Evaluation:
    """``drop_spent`` then ``decayed_total`` at ``at_ms`` in one pass over the contributions:
    the integer total; how far decay can move the sum until the next multiple of the
    granularity, down and up, in millionths (bounds, see ``_steady``; 0 when nothing decays);
    the earliest expiry of the live contributions (for ``Ledger.refresh_due_after``). ``drop``
    False: the ledger is left as it is (a spent contribution is worth 0 either way).

    From the ledger's memo when it decides the total (``decay_memo``); else one pass, which
    builds the memo for the contributions it keeps."""
    known = fast(score, ledger, at_ms)
    if known is not None:
        return known
    contribs = raw(ledger.contribs)  # (read item by item: see ``state.Raw``)
    # (none for an empty ledger: its pass is as short, and the collector has one less object)
    memo = Memo(score.decays, at_ms) if contribs else NO_MEMO
    spent_kept = False
    decays = score.decays
    sums = ledger.sums
    micro = {category: points * MICRO for category, points in sums.items()}
    kept: list[Raw] | None = None
    step = score.decay_granularity_ms
    delta = (at_ms // step + 1) * step - at_ms  # until the next check of the granularity
    down = up = 0
    soonest: int | None = None
    # what decay took, summed over a run of contributions of one category before it goes into
    # ``micro``: one dict update per run, not per contribution (``is``: a new run at worst)
    run: str | None = None
    run_loss = 0
    for i, contrib in enumerate(contribs):
        decay = decays.get(cast(str, contrib[C_RULE]))
        expires = contrib[C_EXPIRES]
        if decay is None:
            if kept is not None:
                kept.append(contrib)
            if expires is not None and (soonest is None or cast(int, expires) < soonest):
                soonest = cast(int, expires)
            continue
        points = cast(int, contrib[C_POINTS])
        category = cast("str | None", contrib[C_CATEGORY])
        if category is not run:
            if run_loss:
                micro[run] -= run_loss
            run, run_loss = category, 0
        full = points * MICRO
        age_ms = at_ms - cast(int, contrib[C_OCCURRED])
        half_life = decay.kind == "half_life"
        # micro_value, its commonest case inline (the same expression: the same value)
        term = 0.0  # (the value before rounding, for the memo)
        if age_ms > 0 and half_life:
            term = full * math.pow(2.0, -age_ms / decay.length_ms)
            value = round_half_even(term)
        else:
            value = micro_value(points, decay, age_ms)
        run_loss += full - value
        if value == 0 and drop:  # spent: it leaves the ledger (decay only shrinks, so it stays 0)
            if kept is None:
                kept = list(contribs[:i])
            sums[category] -= points
            continue
        memo.put(contrib, decay, term)
        if value == 0:  # (kept spent: the memo would miss its expiry)
            spent_kept = True
            continue
        if kept is not None:
            kept.append(contrib)
        if expires is not None and (soonest is None or cast(int, expires) < soonest):
            soonest = cast(int, expires)
        # the most this value can lose in ``delta`` (it only moves toward 0, keeping its sign):
        # half-life loses a share 1 - 2^(-delta/L) <= delta * ln 2 / L, linear |points| per L;
        # 3 millionths for the roundings; steps: all of it
        magnitude = value if value > 0 else -value
        if half_life:
            loss = int((magnitude + 1) * (delta * 0.6932 / decay.length_ms)) + 3
        elif decay.kind == "linear_to_zero":
            loss = (full if full > 0 else -full) * delta // decay.length_ms + 3
        else:
            loss = magnitude
        if loss > magnitude:
            loss = magnitude
        if value > 0:
            down += loss
        else:
            up += loss
    if run_loss:
        micro[run] -= run_loss
    if kept is not None:
        ledger.contribs = cooked(kept)
    if memo is NO_MEMO or spent_kept:
        ledger.memo = None
    else:
        memo.soonest = soonest
        memo.seal(raw(ledger.contribs))
        ledger.memo = memo
    value = div_half_even(unlimited_total(score, micro, MICRO), MICRO)
    return clamp(value + ledger.rolled, score.min, score.max), down, up, soonest


def decayed_categories(score: Score, ledger: Ledger) -> dict[str, int]:
    """Each declared category's clamped value at the last evaluation, rounded half-even."""
    micro = micro_sums(score, ledger, ledger.decayed_ms)
    return {
        name: div_half_even(scaled_clamp(micro.get(name, 0), c.min, c.max, MICRO), MICRO)
        for name, c in score.categories.items()
    }


def drop_spent(score: Score, ledger: Ledger, at_ms: int) -> list[Contribution]:
    """Remove the decaying contributions worth 0 at ``at_ms`` (they stay 0); returns them."""
    decays = score.decays
    spent: list[Raw] = []
    kept: list[Raw] = []
    for contrib in raw(ledger.contribs):  # (read item by item: see ``state.Raw``)
        decay = decays.get(cast(str, contrib[C_RULE]))
        if (
            decay is not None
            and micro_value(
                cast(int, contrib[C_POINTS]), decay, at_ms - cast(int, contrib[C_OCCURRED])
            )
            == 0
        ):
            spent.append(contrib)
        else:
            kept.append(contrib)
    if not spent:
        return []
    ledger.contribs = cooked(kept)
    gone = cooked_list(spent)
    forget(ledger, gone)
    return gone


def decaying(score: Score, ledger: Ledger) -> bool:
    """Whether any live contribution of the ledger decays."""
    decays = score.decays
    return any(cast(str, contrib[C_RULE]) in decays for contrib in raw(ledger.contribs))


def _band(score: Score, value: int) -> tuple[int, str | None]:
    """What a crossing changes: the number of thresholds reached, and the tier."""
    reached = 0
    for threshold in score.thresholds:
        if threshold.at <= value:
            reached += 1
    return reached, tier_of(score, value)


def schedule(
    score: Score, ledger: Ledger, at_ms: int, spread: tuple[int, int] | None = None
) -> None:
    """Set ``decay_due_ms`` after an evaluation at ``at_ms`` (``ledger.total`` is its value);
    ``spread``: ``evaluate``'s bounds on how far decay moves the sum until the next multiple of
    the granularity (None: not known)."""
    if not (decaying(score, ledger) if spread is None else spread[0] or spread[1]):
        ledger.decay_due_ms = None
        return
    ledger.decay_due_ms = next_check(score, ledger, at_ms, ledger.total, spread)


def next_check(
    score: Score, ledger: Ledger, at_ms: int, value: int, spread: tuple[int, int] | None = None
) -> int:
    """The first check after ``at_ms``, where the total was ``value``: the next multiple of the
    granularity, or the first millisecond before it where the band (thresholds reached, tier)
    differs from ``value``'s. With ``spread`` (``evaluate``), a total that cannot leave its band
    before the next multiple is not evaluated there (``_steady``)."""
    step = score.decay_granularity_ms
    tick = (at_ms // step + 1) * step
    if score.thresholds or score.tiers:
        if spread is not None and _steady(
            score, value - spread[0] // MICRO - 2, value + spread[1] // MICRO + 2
        ):
            return tick
        band = _band(score, value)
        if _band(score, decayed_total(score, ledger, tick)) != band:
            low, high = at_ms, tick  # the band differs at high, not at low
            while high - low > 1:
                middle = (low + high) // 2
                if _band(score, decayed_total(score, ledger, middle)) != band:
                    high = middle
                else:
                    low = middle
            tick = high
    return tick


def _steady(score: Score, low: int, high: int) -> bool:
    """Whether every total from ``low`` to ``high`` is in one band: no threshold and no tier
    boundary in ``(low, high]``.

    Until the next multiple of the granularity each decaying value only moves toward 0, by at
    most its bound in ``evaluate``: the sum of the clamped categories (clamping never moves a
    sum further) stays within those bounds, and after rounding to whole points the total is
    within them plus 1 point, so it cannot leave ``value``'s band when this holds.
    """
    for threshold in score.thresholds:
        if low < threshold.at <= high:
            return False
    for tier in score.tiers:
        below = tier.below
        if below is not None and low < below <= high:
            return False
    return True
