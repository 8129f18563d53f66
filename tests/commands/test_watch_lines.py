"""``leadscore watch``'s rendering, without a terminal: one line per change, JSON lines."""

from __future__ import annotations

import json
from typing import Any

from streams.client import ScoreChanged
from streams.commands.watch import as_json, line
from tests.commands.test_client import record


def change(**fields: Any) -> ScoreChanged:
    return ScoreChanged.from_record(record(**fields))


def test_a_line_without_color() -> None:
    assert line(change(), color=False) == (
        "2025-11-24T16:00:00.000Z  -/contact/c-1  engagement  90 → 105 (+15)  rule  "
        "[pricing-visit]  ▲ mql"
    )


def test_a_tier_change_is_shown() -> None:
    text = line(change(cause="tier", old_value=105, delta=0, thresholds=[], tier_before="warm",
                       tier_after="hot", tenant_id="acme"), color=False)  # fmt: skip
    assert text.endswith("acme/contact/c-1  engagement  105 → 105 (+0)  tier  [pricing-visit]  "
                         "warm → hot")  # fmt: skip


def test_colors_mark_direction() -> None:
    down = change(thresholds=[{"name": "mql", "direction": "down"}], new_value=80, delta=-10)
    assert "\x1b[31m▼ mql\x1b[0m" in line(down, color=True)
    assert "\x1b[32m▲ mql\x1b[0m" in line(change(), color=True)


def test_json_line_round_trips() -> None:
    row = json.loads(as_json(change(tier_before="warm", tier_after="hot")))
    assert row["occurred_at"] == "2025-11-24T16:00:00.000Z"
    expected = ("warm", "hot", ["pricing-visit"])
    assert (row["tier_before"], row["tier_after"], row["rule_ids"]) == expected
