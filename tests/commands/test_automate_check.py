"""``leadscore automate --check`` checks the file, and only warns about a secret variable that is
not set where the check runs; running the bridge for real still refuses to start without it,
naming the variable, before it connects to anything."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from streams.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = str(ROOT / "examples" / "automations.yaml")


def test_check_warns_about_an_unset_secret(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("SALES_HOOK_SECRET", raising=False)
    assert main(["automate", "--check", EXAMPLE]) == 0
    out, err = capsys.readouterr()
    assert out == f"{EXAMPLE}: OK: 2 trigger(s), 1 endpoint(s)\n"
    assert err == (
        f"leadscore automate: warning: {EXAMPLE}: endpoints.sales.secret_env: the variable "
        "SALES_HOOK_SECRET is not set (or empty); running the bridge needs it\n"
    )


def test_check_with_the_secret_set_says_nothing_more(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SALES_HOOK_SECRET", "s3cret")
    assert main(["automate", "--check", EXAMPLE]) == 0
    out, err = capsys.readouterr()
    assert (out, err) == (f"{EXAMPLE}: OK: 2 trigger(s), 1 endpoint(s)\n", "")


def test_check_still_fails_on_a_bad_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("SALES_HOOK_SECRET", raising=False)
    bad = tmp_path / "automations.yaml"
    bad.write_text(
        "endpoints: {sales: {url: 'http://127.0.0.1:1/h', secret_env: SALES_HOOK_SECRET}}\n"
        "triggers: [{name: t, endpoint: crm, score: engagement, threshold: mql}]\n"
    )
    assert main(["automate", "--check", str(bad)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "triggers.0.endpoint: 'crm' is not one of the endpoints ['sales']" in err
    assert "warning" not in err  # a file with mistakes: the mistakes, nothing else


def test_running_for_real_fails_fast_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("SALES_HOOK_SECRET", raising=False)
    monkeypatch.setenv("LEADSCORE_BOOTSTRAP_SERVERS", "127.0.0.1:1")  # nothing listens there
    started = time.monotonic()
    assert main(["automate", EXAMPLE]) == 2
    assert time.monotonic() - started < 5  # refused before any Kafka call
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f"leadscore automate: {EXAMPLE}: invalid automations:\n"
        "  endpoints.sales.secret_env: the variable SALES_HOOK_SECRET is not set (or empty)\n"
    )
