"""``leadscore history`` without a broker: its refusals (exit 2, one line) and its lines."""

from __future__ import annotations

import pytest

from streams.cli import main
from streams.commands.history import line


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["contact", "c-1", "--from-topic"], "--from-topic and --before need --score"),
        (["contact", "c-1", "--before", "3"], "--from-topic and --before need --score"),
        (["contact", "c-1", "-n", "0"], "-n must be from 1 to 1000"),
        (["contact", "c-1", "--url", "file:///etc/passwd"], "--url must be http:// or https://"),
    ],
)
def test_refusals(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", *argv]) == 2
    assert message in capsys.readouterr().err


def test_an_unreachable_worker_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "contact", "c-1", "--url", "http://127.0.0.1:9"]) == 1
    err = capsys.readouterr().err
    assert (
        err.startswith("leadscore history: cannot ask http://127.0.0.1:9")
        and "Traceback" not in err
    )


def test_a_line_names_the_move_cause_rules_source_plan_and_tier() -> None:
    change = {"seq": 7, "occurred_at": 1_774_780_860_000, "old_value": 30, "new_value": 52,
              "delta": 22, "cause": "rule", "rule_ids": ["pricing", "blog"],
              "source_event_id": "e-9", "plan_version": "reference-2", "tier_before": "warm",
              "tier_after": "hot"}  # fmt: skip
    text = line(change)
    assert text.startswith("#7 ")
    for part in ("2026-03-29", "30 -> 52", "(+22)", "rule", "rules pricing,blog", "source e-9",
                 "plan reference-2", "tier warm -> hot"):  # fmt: skip
        assert part in text, part
    assert "source -" in line({**change, "source_event_id": None, "rule_ids": []})
