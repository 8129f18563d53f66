"""The fault runs' verdicts (``tests/integration/verify.py``) on a run made by hand, without a
broker: two inputs that feed one contact and one deal, applied to them in opposite orders (two
workers appended the two inputs' items to two entity partitions in opposite orders). No single
input order fits both, so each such entity is scored offline on its own, in its own order."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from streams.scoring import EntityKey
from streams.wire.codec import Source
from tests.integration.verify import (
    applied_input_order,
    check_run,
    items_by_id,
    load,
    replay_with_core,
)

PLAN = Path(__file__).resolve().parents[2] / "plans" / "reference.yaml"
T0 = 1_796_000_000_000


def visit(ident: str, at_ms: int) -> tuple[Source, dict[str, Any]]:
    return Source.PAGE_VISITS, {
        "event_id": ident, "tenant_id": None, "occurred_at": at_ms, "contact_id": "c-1",
        "deal_id": "d-1", "url": "/pricing", "referrer": None, "title": None, "session_id": "s",
    }  # fmt: skip


def test_entities_applied_in_conflicting_orders_are_each_checked_alone(tmp_path: Path) -> None:
    records = [visit(f"v{n}", T0 + n * 60_000) for n in range(1, 4)]
    contact = EntityKey(None, "contact", "c-1")
    deal = EntityKey(None, "deal", "d-1")
    order = [(contact, "v1", T0), (deal, "v3", T0), (contact, "v2", T0), (deal, "v2", T0),
             (contact, "v3", T0), (deal, "v1", T0)]  # fmt: skip
    pairs = [(key, ident) for key, ident, _ in order]
    _, broken = applied_input_order(records, pairs)
    assert broken  # no single input order fits both entities
    replayed = replay_with_core(load(PLAN), pairs, items_by_id(records),
                                {(k, i): now for k, i, now in order})  # fmt: skip
    ids = itertools.count()
    published = [{**change, "change_id": f"x-{next(ids)}", "emitted_at": T0}
                 for changes in replayed.values() for change in changes]  # fmt: skip
    finals = check_run(PLAN, records, published, order, tmp_path)
    assert finals[(None, "deal", "d-1", "deal-health")] > 0
    alone = sorted(p.name for p in tmp_path.glob("alone-*"))
    assert alone == [f"alone-{n}" for n in range(len(broken))]
