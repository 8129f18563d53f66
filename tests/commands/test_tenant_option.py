"""``--tenant`` on every command naming a tenant, and ``--account``, its deprecated old name
(docs/migration.md), still accepted with a word on stderr."""

from __future__ import annotations

import pytest

from streams.cli import _build_parser
from streams.commands.watch import change_filter

COMMANDS = [
    ["plan", "publish", "{opt}", "acme", "plan.yaml"],
    ["plan", "remove", "{opt}", "acme"],
    ["top", "contact", "--score", "engagement", "{opt}", "acme"],
    ["replay", "--plan", "a.yaml", "--current", "b.yaml", "--archive", "x.jsonl", "{opt}", "acme"],
    ["calibrate", "--score", "s", "--since", "2026-01-01T00:00:00Z", "--until",
     "2026-02-01T00:00:00Z", "{opt}", "acme"],
    ["learn", "--score", "s", "{opt}", "acme"],
]  # fmt: skip


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_tenant_and_its_old_name(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    args = _build_parser().parse_args([a.replace("{opt}", "--tenant") for a in argv])
    assert args.tenant == "acme"
    assert capsys.readouterr().err == ""
    args = _build_parser().parse_args([a.replace("{opt}", "--account") for a in argv])
    assert args.tenant == "acme"
    assert "--account is deprecated: use --tenant" in capsys.readouterr().err


@pytest.mark.parametrize("argv", COMMANDS[2:], ids=lambda a: a[0])
def test_without_the_option_the_default_tenant(argv: list[str]) -> None:
    at = argv.index("{opt}")
    assert _build_parser().parse_args(argv[:at] + argv[at + 2 :]).tenant is None


def test_plan_publish_needs_a_tenant(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _build_parser().parse_args(["plan", "publish", "plan.yaml"])
    assert "--tenant/--account" in capsys.readouterr().err


def test_watch_takes_both_names_repeated(capsys: pytest.CaptureFixture[str]) -> None:
    args = _build_parser().parse_args(["watch", "--tenant", "acme", "--account", "-",
                                       "--tenant", "globex"])  # fmt: skip
    assert args.tenant == ["acme", "-", "globex"]
    assert change_filter(args).tenants == frozenset({"acme", None, "globex"})
    assert "deprecated" in capsys.readouterr().err
    assert _build_parser().parse_args(["watch"]).tenant == []


def test_help_names_the_old_option_as_deprecated(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _build_parser().parse_args(["top", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--tenant TENANT, --account TENANT" in out
    assert "--account: its deprecated old name" in out


def test_plan_publish_reads_the_status_of_workers_before_and_after_the_rename() -> None:
    from streams.commands.plan_publish import status_of

    source = {"topic": "leadscore-plans", "partition": 0, "offset": 7}
    new = {"tenant": "acme", "status": "accepted", "version": "v2", "source": source}
    old = {"account": "acme", "status": "accepted", "version": "v2", "source": source}
    assert status_of(new) == new
    assert status_of(old) == new
    assert list(status_of(old)) == list(new)  # printed in the same order
