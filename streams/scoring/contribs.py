"""A ledger's contributions (``state.Contribs``) as the hot loops read and replace them.

``raw`` gives the same objects under a type compiled code does not unbox (``state.Raw``);
``cooked`` makes a ledger's tuple of them. A ledger's contributions are never changed in place:
``appended`` and ``without`` make new tuples.
"""

from __future__ import annotations

from typing import cast

from streams.scoring.state import Contribs, Contribution, Raw


def raw(contribs: Contribs) -> tuple[Raw, ...]:
    """The same tuple, for reading without unboxing (see ``Raw``)."""
    return cast("tuple[Raw, ...]", contribs)


def raw_list(contribs: list[Contribution]) -> list[Raw]:
    """The same list, for reading without unboxing (see ``Raw``)."""
    return cast("list[Raw]", contribs)


def cooked(contribs: list[Raw]) -> Contribs:
    """A ledger's contributions made of ``Raw`` ones (each stays the tuple it was)."""
    return cast(Contribs, tuple(contribs))


def cooked_list(contribs: list[Raw]) -> list[Contribution]:
    """A list made of ``Raw`` contributions."""
    return cast("list[Contribution]", contribs)


def appended(contribs: Contribs, contrib: Contribution) -> Contribs:
    """``contribs`` with ``contrib`` after the others (a new tuple; the old one is unchanged)."""
    return cast(Contribs, raw(contribs) + (contrib,))  # noqa: RUF005 - one C call, no list


def without(contribs: Contribs, index: int) -> Contribs:
    """``contribs`` less the one at ``index`` (a new tuple)."""
    items = raw(contribs)
    return cast(Contribs, items[:index] + items[index + 1 :])
