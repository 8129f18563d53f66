"""The offline CLI: ``leadscore plan check`` and ``leadscore score`` through streams.cli.main."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streams.cli import main

PLAN = """
scores:
  - name: engagement
    entity: contact
    thresholds: [{name: mql, at: 40}]
    categories: {interest: {max: 50}}
    rules:
      - {id: pricing, on: page_visit, where: {url: {glob: "*/pricing*"}}, points: 30,
         category: interest, expires_after: 1d}
      - {id: open, on: email.open, points: 10, repeat: once}
  - name: deal-health
    entity: deal
    rules:
      - {id: won, while: {status: {eq: won}}, points: 100}
"""

EVENTS = [
    '{"type": "page_visit", "event_id": "e1", "occurred_at": "2024-05-06T10:00:00Z", '
    '"contact_id": "c1", "deal_id": "d1", "url": "https://x.com/pricing"}',
    "",
    "this is not json",
    '{"type": "email.open", "event_id": "e2", "occurred_at": 1714993200000, "contact_id": "c1"}',
    '{"type": "email.open", "event_id": "e3", "occurred_at": 1714993200000}',
    '{"type": "deal.stage_changed", "event_id": "e4", "occurred_at": "2024-05-06T12:00:00Z", '
    '"deal_id": "d1", "pipeline": "p", "to_stage": "won", "status": "won"}',
    # the tenant under its deprecated old name (docs/migration.md): still the tenant
    '{"type": "adjustment", "command_id": "a1", "occurred_at": "2024-05-06T12:30:00Z", '
    '"entity": "contact", "entity_id": "c2", "account_id": "acme", "score": "engagement", '
    '"op": "set", "points": 5}',
]
T0 = 1_714_989_600_000


@pytest.fixture
def files(tmp_path: Path) -> tuple[str, str]:
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN)
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(EVENTS) + "\n")
    return str(plan), str(events)


def lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def test_score_finals(files: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    plan, events = files
    assert main(["score", "--plan", plan, events]) == 0
    out, err = capsys.readouterr()
    assert lines(out) == [
        {
            "kind": "score",
            "tenant_id": None,
            "entity": "contact",
            "entity_id": "c1",
            "score": "engagement",
            "value": 40,
            "categories": {"interest": 30},
            "thresholds_reached": ["mql"],
            "tier": None,
        },
        {
            "kind": "score",
            "tenant_id": None,
            "entity": "deal",
            "entity_id": "d1",
            "score": "deal-health",
            "value": 100,
            "categories": {},
            "thresholds_reached": [],
            "tier": None,
        },
        {
            "kind": "score",
            "tenant_id": "acme",
            "entity": "contact",
            "entity_id": "c2",
            "score": "engagement",
            "value": 5,
            "categories": {"interest": 0},
            "thresholds_reached": [],
            "tier": None,
        },
    ]
    assert err.splitlines() == [
        "line 3: not valid JSON: Expecting value: line 1 column 1 (char 0)",
        "line 5: contact_id or deal_id is required",
        "leadscore: 2 bad line(s) skipped",
    ]


def test_score_changes_and_until(
    files: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    plan, events = files
    assert (
        main(["score", "--plan", plan, events, "--changes", "--until", "2024-05-08T00:00:00Z"]) == 0
    )
    out, _ = capsys.readouterr()
    records = lines(out)
    changes = [r for r in records if r["kind"] == "change"]
    assert all("tenant_id" in c and "account_id" not in c for c in changes)  # the published shape
    assert [c["tenant_id"] for c in changes if c["entity_id"] == "c2"] == ["acme"]
    assert [
        (
            c["entity_id"],
            c["seq"],
            c["old_value"],
            c["new_value"],
            c["cause"],
            c["occurred_at"] - T0,
            c["emitted_at"] - T0,
        )
        for c in changes
    ] == [
        ("c1", 1, 0, 30, "rule", 0, 0),
        ("c1", 2, 30, 40, "rule", 3_600_000, 3_600_000),
        ("d1", 1, 0, 100, "state", 7_200_000, 7_200_000),
        ("c2", 1, 0, 5, "adjustment", 9_000_000, 9_000_000),
        ("c1", 3, 40, 10, "expiry", 86_400_000, 136_800_000),
    ]
    assert changes[1]["thresholds"] == [{"name": "mql", "direction": "up"}]
    assert changes[4]["thresholds"] == [{"name": "mql", "direction": "down"}]
    assert [r["value"] for r in records if r["kind"] == "score"] == [10, 100, 5]


def test_score_from_stdin(
    files: tuple[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    plan, _ = files
    monkeypatch.setattr("sys.stdin", io.StringIO(EVENTS[0] + "\n"))
    assert main(["score", "--plan", plan, "-"]) == 0
    assert len(lines(capsys.readouterr().out)) == 2  # c1 engagement and d1 deal-health


@pytest.mark.parametrize(
    ("args", "code", "stderr_start"),
    [
        # the plan file does not exist
        (
            ["score", "--plan", "/nonexistent.yaml", "x"],
            1,
            "leadscore: cannot read plan /nonexistent.yaml: No such file or directory",
        ),
        # the events file does not exist
        (
            ["score", "--plan", "{plan}", "/nonexistent.jsonl"],
            1,
            "leadscore: cannot read events /nonexistent.jsonl: No such file or directory",
        ),
        # a bad --until
        (
            ["score", "--plan", "{plan}", "{events}", "--until", "tomorrow"],
            2,
            "leadscore: --until must be epoch millis or ISO-8601 with an offset (got 'tomorrow')",
        ),
        # an invalid plan
        (
            ["score", "--plan", "{bad}", "{events}"],
            2,
            "{bad}: score 's', field 'entity': must be one of contact, deal, account (got 'lead')",
        ),
        (
            ["plan", "check", "{bad}"],
            2,
            "{bad}: score 's', field 'entity': must be one of contact, deal, account (got 'lead')",
        ),
    ],
)
def test_failures(
    files: tuple[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    code: int,
    stderr_start: str,
) -> None:
    plan, events = files
    bad = tmp_path / "bad.yaml"
    bad.write_text("scores: [{name: s, entity: lead}]")
    names = {"plan": plan, "events": events, "bad": str(bad)}
    assert main([a.format(**names) for a in args]) == code
    err = capsys.readouterr().err
    assert err.startswith(stderr_start.format(**names))


def test_plan_check_ok(files: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    plan, _ = files
    assert main(["plan", "check", plan]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{plan}: OK: 2 score(s), 3 rule(s), version ")
    assert out[1:] == [
        "  engagement (contact): 2 rule(s); categories interest; thresholds mql@40",
        "  deal-health (deal): 1 rule(s)",
    ]
