"""``leadscore score``, ``plan check`` and ``replay --archive`` at the edges: bad lines are
reported with their numbers and skipped, the run goes on, plans out of range or too large are
refused with a message, and no traceback ever reaches the user (in process and as a command)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from streams.cli import main
from streams.scoring.plan.reader import MAX_PLAN_BYTES

ROOT = Path(__file__).resolve().parents[2]
TWO_RULES = """
scores:
  - name: engagement
    entity: contact
    rules:
      - {id: visit, on: page_visit, points: 1}
      - {id: pricing, on: page_visit, where: {url: {contains: pricing}}, points: 5}
"""


def visit(event_id: str, at: str, url: str = "https://x.io/pricing") -> str:
    return json.dumps({"type": "page_visit", "event_id": event_id, "contact_id": "c1",
                       "occurred_at": at, "url": url})  # fmt: skip


REPRO = [visit("e1", "2026-03-01T00:00:00Z"), visit("e2", "9999-01-01T00:00:00Z"),
         visit("e3", "2026-03-02T00:00:00Z")]  # fmt: skip
FUTURE_LINE_2 = (
    "line 2: occurred_at 9999-01-01T00:00:00.000Z is about 7,978 years ahead of {ref}; at most "
    "1h ahead is accepted (the plan's max_future); a date in the year 9999 is usually a "
    "placeholder for 'no date'"
)


@pytest.fixture
def plan(tmp_path: Path) -> str:
    path = tmp_path / "two.yaml"
    path.write_text(TWO_RULES)
    return str(path)


def write(tmp_path: Path, name: str, lines: list[bytes | str]) -> str:
    path = tmp_path / name
    path.write_bytes(b"".join((x.encode() if isinstance(x, str) else x) + b"\n" for x in lines))
    return str(path)


def scores(out: str) -> list[tuple[str, int]]:
    return [(r["entity_id"], r["value"]) for r in map(json.loads, out.splitlines())
            if r["kind"] == "score"]  # fmt: skip


@pytest.mark.parametrize(
    ("options", "ref"),
    [
        (["--until", "2026-03-03T00:00:00Z"], "--until 2026-03-03T00:00:00.000Z"),
        (["--now", "2026-03-03T00:00:00Z"], "--now 2026-03-03T00:00:00.000Z"),
        # --now is the reference, --until only the end of the clock
        (["--now", "2026-03-03T00:00:00Z", "--until", "2026-03-02T00:00:00Z"],
         "--now 2026-03-03T00:00:00.000Z"),
    ],
)  # fmt: skip
def test_the_9999_visit_is_a_bad_line_and_the_next_visit_scores(
    plan: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str], ref: str
) -> None:
    events = write(tmp_path, "repro.jsonl", list(REPRO))
    assert main(["score", "--plan", plan, events, "--changes", *options]) == 0
    out, err = capsys.readouterr()
    changes = [(r["source_event_id"], r["new_value"]) for r in map(json.loads, out.splitlines())
               if r["kind"] == "change"]  # fmt: skip
    assert changes == [("e1", 6), ("e3", 12)]
    assert scores(out) == [("c1", 12)]
    assert err.splitlines() == [FUTURE_LINE_2.format(ref=ref), "leadscore: 1 bad line(s) skipped"]


def test_without_a_reference_the_wall_clock_is_it(
    plan: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = write(tmp_path, "repro.jsonl", list(REPRO))
    assert main(["score", "--plan", plan, events]) == 0
    out, err = capsys.readouterr()
    assert scores(out) == [("c1", 12)]
    assert err.startswith("line 2: occurred_at 9999-01-01T00:00:00.000Z is about ")
    assert " ahead of now (the wall clock) " in err


def test_a_bad_now(plan: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = write(tmp_path, "repro.jsonl", list(REPRO))
    assert main(["score", "--plan", plan, events, "--now", "soon"]) == 2
    assert capsys.readouterr().err == (
        "leadscore: --now must be epoch millis or ISO-8601 with an offset (got 'soon')\n"
    )


BAD_LINES: list[tuple[bytes | str, str]] = [
    (b"[" * 1000 + b"]" * 1000,
     "the JSON value is refused: lists and objects nested deeper than 64 levels"),
    (b'{"type": "page_visit", "event_id": "\xff\xfe", "contact_id": "c1"}',
     "not UTF-8 text (invalid start byte at byte 37 of the line)"),
    (BIG := json.dumps({"type": "page_visit", "event_id": "big", "contact_id": "c1",
                        "occurred_at": 1, "url": "x" * (1024 * 1024)}),
     f"the line is {len(BIG):,} bytes long; at most 1,048,576"),
    ('{"type": "purchase", "event_id": "p", "contact_id": "c1", "occurred_at": 1, '
     '"order_id": "o", "currency": "EUR", "amount": 1e1000000}',
     "amount must be a decimal number greater than -10^18 and less than 10^18 (got 1E+1000000)"),
    ('{"type": "purchase", "event_id": "p", "contact_id": "c1", "occurred_at": 1, '
     '"order_id": "o", "currency": "EUR", "amount": NaN}',
     "amount must be a decimal number greater than -10^18 and less than 10^18 (got NaN)"),
    ('{"type": "purchase", "event_id": "p", "contact_id": "c1", "occurred_at": 1, '
     '"order_id": "o", "currency": "EUR", "amount": Infinity}',
     "amount must be a decimal number greater than -10^18 and less than 10^18 (got Infinity)"),
    (visit("us", 1_772_323_200_000_000),  # type: ignore[arg-type]
     "occurred_at 1772323200000000 (epoch millis after the year 9999) is about 56,143 years "
     "ahead of --now 2026-03-01T00:30:00.000Z; at most 1h ahead is accepted (the plan's "
     "max_future); it looks like microseconds since the epoch, not milliseconds (as "
     "microseconds it is 2026-03-01T00:00:00.000Z); send epoch milliseconds or ISO-8601"),
    ('{"type": "page_visit", "event_id": 42}',
     "event_id must be a non-empty string (got 42)"),
    ("not json", "not valid JSON: Expecting value: line 1 column 1 (char 0)"),
]  # fmt: skip


def test_bad_lines_are_reported_with_their_numbers_and_the_run_goes_on(
    plan: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [visit("first", "2026-03-01T00:00:00Z")]
    for line, _ in BAD_LINES:
        lines += [line, ""]  # a blank line between: numbers count every line
    lines.append(visit("last", "2026-03-01T00:10:00Z", url="https://x.io/blog"))
    events = write(tmp_path, "bad.jsonl", lines)
    assert main(["score", "--plan", plan, events, "--now", "2026-03-01T00:30:00Z"]) == 0
    out, err = capsys.readouterr()
    assert scores(out) == [("c1", 7)]
    assert err.splitlines() == [
        *(f"line {2 + 2 * i}: {reason}" for i, (_, reason) in enumerate(BAD_LINES)),
        f"leadscore: {len(BAD_LINES)} bad line(s) skipped",
    ]


def test_a_non_utf8_line_from_stdin_is_a_bad_line(
    plan: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    raw = b"\xff\n" + visit("ok", "2026-03-01T00:00:00Z").encode() + b"\n"
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(raw)))
    assert main(["score", "--plan", plan, "-", "--now", "2026-03-01T00:00:00Z"]) == 0
    out, err = capsys.readouterr()
    assert scores(out) == [("c1", 6)]
    assert (
        err.splitlines()[0] == "line 1: not UTF-8 text (invalid start byte at byte 1 of the line)"
    )


# ----- plans ---------------------------------------------------------------------------------

OVERFLOW = """
scores:
  - name: engagement
    entity: contact
    rules:
      - {id: buy, on: purchase, points: {field: amount, multiply: 1e1000000}}
"""
OVERFLOW_ERROR = (
    "{path}: score 'engagement', rule 'buy', field 'points.multiply': must be a number from "
    "-1,000,000,000 to 1,000,000,000 (got 1E+1000000)"
)


def test_a_plan_out_of_range_is_refused_by_check_score_and_replay(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "overflow.yaml"
    bad.write_text(OVERFLOW)
    events = write(tmp_path, "e.jsonl", [visit("e1", "2026-03-01T00:00:00Z")])
    good = tmp_path / "good.yaml"
    good.write_text(TWO_RULES)
    for args in (["plan", "check", str(bad)], ["score", "--plan", str(bad), events],
                 ["replay", "--plan", str(bad), "--current", str(good), "--archive", events,
                  "--out", str(tmp_path / "r")]):  # fmt: skip
        assert main(args) == 2
        err = capsys.readouterr().err
        assert err.splitlines()[0] == OVERFLOW_ERROR.format(path=bad)


def test_plan_check_refuses_what_publish_and_the_worker_refuse(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    big = tmp_path / "big.yaml"
    text = TWO_RULES + ("# " + "x" * 98 + "\n") * 6370  # 637 KB
    big.write_text(text)
    size = len(text.encode())
    assert size > MAX_PLAN_BYTES
    assert main(["plan", "check", str(big)]) == 2
    assert capsys.readouterr().err == (
        f"{big}: the plan is {size:,} bytes; at most 524,288 (512 KiB) are accepted\n"
    )
    assert main(["plan", "publish", "--tenant", "acme", str(big), "--wait", "0"]) == 2
    assert capsys.readouterr().err == (
        f"invalid plan (nothing published): {big}: the plan is {size:,} bytes; at most 524,288 "
        "(512 KiB) are accepted\n"
    )
    from streams.engine.tenants import check  # what the worker decides about a plans record

    assert check(b"acme", text.encode()).errors == (
        f"the plan is {size:,} bytes; at most 524,288 (512 KiB) are accepted",
    )


def test_replay_reports_bad_archive_lines_with_their_numbers(
    plan: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = write(tmp_path, "repro.jsonl", [*REPRO, b"\xff"])
    out = tmp_path / "replay"
    assert main(["replay", "--plan", plan, "--current", plan, "--archive", events,
                 "--at", "2026-03-03T00:00:00Z", "--out", str(out), "--quiet"]) == 0  # fmt: skip
    err = capsys.readouterr().err.splitlines()
    assert err == [
        FUTURE_LINE_2.format(ref="--at 2026-03-03T00:00:00.000Z"),
        "line 4: not UTF-8 text (invalid start byte at byte 1 of the line)",
        "leadscore replay: 2 bad line(s) skipped",
    ]
    report = json.loads((out / "replay.json").read_text())
    assert (report["events"], report["bad_lines"]) == (2, 2)


# ----- as commands: exit codes, and never a traceback --------------------------------------


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "streams.cli", *args], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=120, check=False)  # fmt: skip


def test_as_commands_nothing_ends_in_a_traceback(plan: str, tmp_path: Path) -> None:
    overflow = tmp_path / "overflow.yaml"
    overflow.write_text(OVERFLOW)
    events = write(tmp_path, "bad.jsonl", [*REPRO, *(line for line, _ in BAD_LINES)])
    cases = [
        (["plan", "check", str(overflow)], 2),
        (["score", "--plan", str(overflow), events], 2),
        (["score", "--plan", plan, events, "--now", "2026-03-03T00:00:00Z"], 0),
        (["replay", "--plan", plan, "--current", plan, "--archive", events, "--quiet",
          "--out", str(tmp_path / "r")], 0),
    ]  # fmt: skip
    for args, code in cases:
        done = run(*args)
        assert (done.returncode, "Traceback" in done.stderr) == (code, False), (args, done.stderr)
    scored = run("score", "--plan", plan, events, "--now", "2026-03-03T00:00:00Z")
    assert scores(scored.stdout) == [("c1", 12)]
    assert f"leadscore: {1 + len(BAD_LINES)} bad line(s) skipped" in scored.stderr
