"""Example downstream service: hand a lead to sales when its score crosses a threshold upwards.

    python examples/sales_handoff.py --bootstrap 127.0.0.1:9092 --threshold mql \
        --ledger var/handoffs.jsonl

It consumes ``score-changed`` with :mod:`streams.client` as the consumer group
``sales-handoff`` (read_committed; offsets committed only after a change is handled), keeps only
upward crossings of the threshold, and "hands the lead over" by appending a line to a ledger
file. The ledger doubles as the idempotency record: a change whose ``change_id`` is already in it
is skipped, so a crash between the hand-over and the offset commit never hands a lead over twice.
A real service would call its CRM here, with ``change_id`` as the idempotency key.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

from streams.client import ChangeFilter, ScoreChanged, ScoreChanges


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--topic", default="score-changed")
    parser.add_argument("--group", default="sales-handoff")
    parser.add_argument("--threshold", default="mql")
    parser.add_argument("--ledger", type=Path, default=Path("var/handoffs.jsonl"))
    parser.add_argument("--idle-exit", type=float, default=None, help="stop when idle this long")
    args = parser.parse_args(argv)

    args.ledger.parent.mkdir(parents=True, exist_ok=True)
    done = set()
    if args.ledger.exists():
        done = {json.loads(line)["change_id"] for line in args.ledger.read_text().splitlines()}

    def hand_over(change: ScoreChanged) -> None:
        if change.change_id in done:  # handled before a crash: the offset was not committed yet
            return
        entry = {
            "change_id": change.change_id,
            "tenant_id": change.tenant_id,
            "entity": change.entity,
            "entity_id": change.entity_id,
            "score": change.score,
            "value": change.new_value,
            "occurred_at": change.occurred_at.isoformat(),
        }
        with args.ledger.open("a", encoding="utf-8") as ledger:
            ledger.write(json.dumps(entry) + "\n")
        done.add(change.change_id)
        print(f"handed over {change.entity} {change.entity_id} ({change.score} "
              f"{change.old_value} -> {change.new_value})")  # fmt: skip

    where = ChangeFilter(thresholds=frozenset({args.threshold}), directions=frozenset({"up"}))
    changes = ScoreChanges(args.bootstrap, args.group, topic=args.topic, where=where,
                           idle_timeout_s=args.idle_exit)  # fmt: skip
    # Ctrl-C stops it; leaving the with block commits what was handled
    with changes, contextlib.suppress(KeyboardInterrupt):
        changes.run(hand_over)
    return 0


if __name__ == "__main__":
    sys.exit(main())
