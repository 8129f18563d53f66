"""``leadscore worker --help`` lists every setting with its default and description, generated
from ``streams.settings.Settings``: the same variables and defaults as the settings table of
docs/operations.md, so neither can drift from the class."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from streams.cli import main
from streams.settings import Settings
from tests.deploy.test_operations_doc import DOC, settings_table

ROOT = Path(__file__).resolve().parents[2]


def worker_help(capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as done:
        main(["worker", "--help"])
    assert done.value.code == 0
    out, err = capsys.readouterr()
    assert err == ""
    return out


def test_every_setting_with_the_documented_default(capsys: pytest.CaptureFixture[str]) -> None:
    text = worker_help(capsys)
    listed = re.findall(r"^  (LEADSCORE_[A-Z0-9_]+)  default: (.*)$", text, re.MULTILINE)
    documented = settings_table(DOC.read_text())
    rows = [row for row in listed if row[0] != "LEADSCORE_CORE"]
    assert len(rows) == len(documented)
    assert dict(rows) == dict(documented)  # (the table groups a few rows its own way)
    assert {name for name, _ in listed} == {
        *(f"LEADSCORE_{field.upper()}" for field in Settings.model_fields), "LEADSCORE_CORE"
    }  # fmt: skip
    assert "docs/operations.md" in text


def test_each_setting_has_a_one_line_description(capsys: pytest.CaptureFixture[str]) -> None:
    lines = worker_help(capsys).splitlines()
    for name, field in Settings.model_fields.items():
        description = field.description
        assert description and "\n" not in description and len(description) <= 92, name
        at = next(
            i for i, line in enumerate(lines) if line.startswith(f"  LEADSCORE_{name.upper()} ")
        )
        assert lines[at + 1] == f"      {description}"


def test_the_settings_are_imported_only_for_the_help() -> None:
    probe = (
        "import sys\n"
        "from streams.cli import _build_parser\n"
        "parser = _build_parser()\n"
        "parser.parse_args(['worker'])\n"
        "print('streams.settings' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=True)  # fmt: skip
    assert done.stdout == "False\n"


def test_a_usage_error_stays_short(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["worker", "--bogus"])
    assert done.value.code == 2
    _, err = capsys.readouterr()
    assert "unrecognized arguments: --bogus" in err
    assert "LEADSCORE_" not in err
