"""One event that feeds a deal score directly and through a member contact, through the real
service: the deal's own change comes first, then the roll-up change that the contact's member
update makes when it arrives over the entity-events topic (docs/plans.md, Roll-ups). The pure
core's replay of the same log order is pinned in ``tests/scoring/test_rollup_one_event.py``."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from streams.wire.codec import Source
from tests.integration.service import Service
from tests.integration.verify import exactly_once
from tests.scoring.test_rollup_one_event import PLAN


async def test_a_deal_gets_its_own_change_then_the_rollup(bootstrap: str, tmp_path: Path) -> None:
    plan = tmp_path / "one-event.yaml"
    plan.write_text(PLAN)
    for partitions in (1, 3):  # the contact and the deal in one partition, and (maybe) apart
        unique = uuid.uuid4().hex[:12]
        (tmp_path / unique).mkdir()
        service = Service(bootstrap, unique, tmp_path / unique, plan=plan, partitions=partitions)
        now = int(time.time() * 1000)
        record: dict[str, Any] = {
            "event_id": "s-1", "tenant_id": None, "occurred_at": now, "contact_id": "c-1",
            "deal_id": "d-1", "pipeline": "sales", "from_stage": None, "to_stage": "qualified",
            "status": "open", "value": None,
        }  # fmt: skip
        worker = service.worker("w1").start()
        try:
            await worker.wait_ready()
            await service.produce([(Source.DEAL_STAGE_CHANGES, record)])
            deadline = time.monotonic() + 60
            changes: list[dict[str, Any]] = []
            while time.monotonic() < deadline and len(changes) < 3:
                time.sleep(0.3)
                changes = await service.changes()
            time.sleep(1.0)  # nothing more comes
            changes = await service.changes()
        finally:
            service.stop_all()
        exactly_once(changes)
        got = sorted(
            (c["entity_id"], c["seq"], c["old_value"], c["new_value"], c["cause"], c["rule_ids"],
             c["source_event_id"])
            for c in changes
        )  # fmt: skip
        assert got == [
            ("c-1", 1, 0, 10, "rule", ["deal-moved"], "s-1"),
            ("d-1", 1, 0, 20, "rule", ["stage-moved"], "s-1"),
            ("d-1", 2, 20, 30, "rollup", ["rollup"], "s-1"),
        ], partitions
