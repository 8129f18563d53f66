"""``bench/state_bytes.py`` (``make bench-state-bytes``) still runs: a tiny run writes its
results files, and the busiest contact's blob is smaller with its seen ids in segments."""

from __future__ import annotations

from pathlib import Path

from streams.scoring.segments import SEAL
from tests.bench import tiny_run


def test_a_tiny_run_writes_both_encodings_figures(tmp_path: Path) -> None:
    result, table = tiny_run(tmp_path, "state_bytes", "--events", "4000", "--commit-every",
                             "200", "--checkpoints", "2")  # fmt: skip
    assert [row["events"] for row in result["rows"]] == [2000, 4000]
    for row in result["rows"]:
        assert row["whole_bytes_per_event"] > 0 and row["split_bytes_per_event"] > 0
        # the parts under 0.5% are left out of the shares
        assert 0.9 <= sum(row["shares"].values()) <= 1.01 and "score ledgers" in row["shares"]
    # the skewed traffic gives one contact more ids than a segment holds
    assert result["busiest_seen_ids"] >= SEAL
    assert result["busiest_blob_bytes"] < result["busiest_whole_bytes"]
    assert result["command"] == (
        "python bench/state_bytes.py --events 4000 --commit-every 200 --checkpoints 2"
    )
    assert "| 4,000 |" in table
