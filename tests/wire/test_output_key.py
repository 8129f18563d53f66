"""``output_key``: the key of ``score-changed`` and ``scores`` records is the JSON array
``[tenant_id, entity, entity_id, score]`` without spaces, byte for byte what ``json.dumps`` writes
(readers and compaction depend on the exact bytes)."""

from __future__ import annotations

import json

import pytest

from streams.wire.publish import output_key

AWKWARD = [
    (None, "contact", "c-1", "engagement"),
    ("acme", "deal", "d-9", "fit"),
    ('quo"te', "contact", "back\\slash", "tab\there"),
    ("t\u00e9nant", "account", "line\nbreak\x01\x1f", "\u2028sep"),
    ("", "contact", "\U0001f600", "emoji \ud83d"),  # a lone surrogate, as json.dumps escapes it
]


@pytest.mark.parametrize("parts", AWKWARD)
def test_the_key_is_exactly_what_json_dumps_writes(parts: tuple[str | None, str, str, str]) -> None:
    expected = json.dumps(list(parts), separators=(",", ":")).encode()
    assert output_key(*parts) == expected
    assert json.loads(output_key(*parts)) == list(parts)
