"""The settings table of ``docs/operations.md`` and the ``Settings`` object agree exactly.

Every field has one row (variable = ``LEADSCORE_`` + upper-case field name) and its documented
default is the field's default, rendered as below. Adding a setting without documenting it, or
changing a default without updating the table, fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic_core import PydanticUndefined

from streams import settings
from streams.settings import Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
HEADER = ("Variable", "Default", "Meaning")


def render_default(value: object) -> str:
    """A field default as the table writes it (without the surrounding backticks): the
    rendering ``leadscore worker --help`` uses, so the two cannot drift apart."""
    if value is PydanticUndefined:
        raise AssertionError("every setting needs a default")
    return settings.render_default(value)


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _unquote(cell: str) -> str:
    match = re.fullmatch(r"`([^`]*)`", cell)
    assert match, f"cell {cell!r} is not a single `code` span"
    return match.group(1)


def settings_table(text: str) -> list[tuple[str, str]]:
    """(variable, default) rows of the first table under the ``## Settings`` heading."""
    lines = text.splitlines()
    start = lines.index("## Settings")  # ValueError: the heading is missing
    rows: list[tuple[str, str]] = []
    in_table = False
    for line in lines[start + 1 :]:
        if line.startswith("#"):
            break
        if not line.startswith("|"):
            if in_table:
                break
            continue
        cells = _cells(line)
        if not in_table:
            assert tuple(cells) == HEADER, f"settings table header is {cells}"
            in_table = True
            continue
        if set("".join(cells)) <= set("-: "):
            continue  # the |---|---| separator
        assert len(cells) == len(HEADER), f"row {line!r} has {len(cells)} cells"
        rows.append((_unquote(cells[0]), _unquote(cells[1])))
    assert rows, "no settings table under ## Settings"
    return rows


def expected_rows() -> dict[str, str]:
    return {
        f"LEADSCORE_{name.upper()}": render_default(field.default)
        for name, field in Settings.model_fields.items()
    }


def test_every_setting_has_exactly_one_row() -> None:
    documented = [variable for variable, _ in settings_table(DOC.read_text(encoding="utf-8"))]
    assert len(documented) == len(set(documented)), "a variable is documented twice"
    assert set(documented) == set(expected_rows())


@pytest.mark.parametrize("variable", sorted(expected_rows()))
def test_documented_default_is_the_code_default(variable: str) -> None:
    documented = dict(settings_table(DOC.read_text(encoding="utf-8")))
    assert documented.get(variable) == expected_rows()[variable]


@pytest.mark.parametrize(
    ("value", "rendered"),
    [
        (8, "8"),  # int
        (1.0, "1.0"),  # float keeps its decimal point, as written in the code
        ("127.0.0.1:9092", "127.0.0.1:9092"),  # str as is
        (Path("plans/reference.yaml"), "plans/reference.yaml"),  # Path as its text
        (None, "(none)"),  # optional without a value
        (frozenset(), "(empty)"),  # empty collection
        (frozenset({"b", "a"}), "a,b"),  # collection: sorted, comma-joined
    ],
)
def test_render_default(value: object, rendered: str) -> None:
    assert render_default(value) == rendered


TABLE = "| Variable | Default | Meaning |\n|---|---|---|\n| `LEADSCORE_X` | `1` | x |\n"


@pytest.mark.parametrize(
    ("text", "rows"),
    [
        # the first table under the heading, separator skipped
        ("## Settings\n\n" + TABLE, [("LEADSCORE_X", "1")]),
        # a table under the next heading is not part of the settings table
        ("## Settings\n\n" + TABLE + "\n## Other\n\n" + TABLE.replace("X", "Y"),
         [("LEADSCORE_X", "1")]),
        # a second table further down the same section is ignored
        ("## Settings\n\n" + TABLE + "\ntext\n\n" + TABLE.replace("X", "Y"),
         [("LEADSCORE_X", "1")]),
    ],
)  # fmt: skip
def test_settings_table_parser(text: str, rows: list[tuple[str, str]]) -> None:
    assert settings_table(text) == rows


def test_a_missing_row_is_noticed() -> None:
    # a table missing a setting does not equal the Settings fields
    assert {v for v, _ in settings_table("## Settings\n\n" + TABLE)} != set(expected_rows())
