"""What the commits write per event as states grow: whole states against sealed segments.

Run ``make bench-state-bytes`` (or ``.venv/bin/python bench/state_bytes.py [--events N]``).
The benchmark's traffic (``bench/run.py``'s: 20,000 contacts, 3,000 deals, popularity
skewed, so a few contacts get thousands of events) is scored by the compiled core under the
reference plan; every ``--commit-every`` events a "commit" encodes each state changed since the
last one, as the worker's transaction does, twice: whole (``serialize.dumps``, every seen id and
earlier property value in the blob, the format before segments) and for a commit
(``serialize.dumps_split``: the blob plus the segments sealed now, ``streams.scoring.segments``).
At checkpoints it reports, per event so far, the bytes and the encoding time of each way, and
the share of each part of the encoded states (the seen ids, the score ledgers, the property
history, ...).

No Kafka: the bytes are what the loop would produce to the changelog and write to the store
(the 8-byte due prefix and the ``scores``, history and re-keyed records aside). Results:
``bench/results/state-bytes-<UTC date>.json`` and ``.md`` (``<date>b``... when taken;
machine, command, figures).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import msgspec  # noqa: E402
from run import PLAN, free_stem, machine, traffic  # noqa: E402  (bench/run.py's traffic)

from streams import native  # noqa: E402
from streams.scoring import EntityKey, EntityState, Invalid, apply, load_plan, parse_input, route  # noqa: E402
from streams.scoring.segments import past_tail, tail  # noqa: E402
from streams.scoring.serialize import body, dumps, dumps_split  # noqa: E402
from streams.wire.codec import Codec  # noqa: E402

#: The parts of a state body, in ``serialize.body``'s order.
PARTS = ("watermark", "compacted", "seen ids", "properties", "score ledgers", "next due",
         "property history", "history floor", "roll-up version", "account", "deals")  # fmt: skip
_encode = msgspec.msgpack.Encoder().encode


def parts_of(state: EntityState) -> list[int]:
    """Encoded bytes of each part of the state as ``dumps_split`` writes it (seen ids and
    property history: their tails)."""
    return [len(_encode(part)) for part in body(state, tail(state), past_tail(state))]


def run(events: int, every: int, checkpoints: int) -> dict[str, Any]:
    plan = load_plan(PLAN.read_text(), source=str(PLAN))
    codec = Codec.load()
    items = []
    for source, raw in traffic(events, seed=7, contacts=20_000, deals=3_000):
        record = codec.decode_input(source, codec.encode(codec.inputs[source], raw), fmt="avro")
        items.append((parse_input(record), record["occurred_at"]))
    states: dict[EntityKey, EntityState] = {}
    dirty: set[EntityKey] = set()
    whole_b = split_b = sealed_b = 0
    whole_s = split_s = 0.0
    parts: Counter[str] = Counter()
    rows, now, marks = [], 0, {events * (i + 1) // checkpoints for i in range(checkpoints)}
    for n, (item, at) in enumerate(items, 1):
        if not isinstance(item, Invalid):
            now = max(now, at)
            for key in route(item):
                states[key] = apply(states.get(key), key, item, plan, now_ms=now).state
                dirty.add(key)
        if n % every == 0 or n == events:
            changed = [states[k] for k in dirty]
            started = time.perf_counter()
            whole_b += sum(len(dumps(s)) for s in changed)
            whole_s += time.perf_counter() - started
            started = time.perf_counter()
            for state in changed:
                blob, sealed, _ = dumps_split(state)
                split_b += len(blob)
                sealed_b += sum(len(segment) for _, segment in sealed)
            split_s += time.perf_counter() - started
            for state in changed:
                parts.update(dict(zip(PARTS, parts_of(state), strict=True)))
            dirty.clear()
        if n in marks:
            total = sum(parts.values())
            rows.append({
                "events": n,
                "whole_bytes_per_event": round(whole_b / n),
                "whole_encode_us_per_event": round(1e6 * whole_s / n, 1),
                "split_bytes_per_event": round((split_b + sealed_b) / n),
                "of_which_segments": round(sealed_b / n),
                "split_encode_us_per_event": round(1e6 * split_s / n, 1),
                "shares": {k: round(v / total, 3) for k, v in parts.most_common()
                           if v / total >= 0.005},
            })  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
    busiest = max(states.values(), key=lambda s: len(s.seen))
    return {"rows": rows, "busiest_seen_ids": len(busiest.seen),
            "busiest_whole_bytes": len(dumps(busiest)),
            "busiest_blob_bytes": len(dumps_split(busiest)[0])}  # fmt: skip


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"# State bytes per commit ({result['date']})", "",
        f"Command: `{result['command']}`", "",
        f"Machine: {result['machine']['cpu']} ({result['machine']['cores']} cores), Python "
        f"{result['machine']['python']}, {result['core']}. A commit every "
        f"{result['commit_every']} events.", "",
        "| events so far | whole: bytes per event | encode µs per event | with segments: bytes "
        "per event (segments) | encode µs per event | shares of the states as written with "
        "segments |",
        "|---:|---:|---:|---:|---:|---|",
    ]  # fmt: skip
    for row in result["rows"]:
        shares = ", ".join(f"{k} {v:.0%}" for k, v in row["shares"].items())
        lines.append(f"| {row['events']:,} | {row['whole_bytes_per_event']:,} | "
                     f"{row['whole_encode_us_per_event']} | {row['split_bytes_per_event']:,} "
                     f"({row['of_which_segments']:,}) | {row['split_encode_us_per_event']} | "
                     f"{shares} |")  # fmt: skip
    lines += ["", f"The busiest entity: {result['busiest_seen_ids']:,} seen ids, "
              f"{result['busiest_whole_bytes']:,} bytes whole, a blob of "
              f"{result['busiest_blob_bytes']:,} bytes with its segments apart."]  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=150_000)
    parser.add_argument("--commit-every", type=int, default=600,
                        help="events per commit (the live loop's, at 5,000 events/s)")  # fmt: skip
    parser.add_argument("--checkpoints", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    figures = run(args.events, args.commit_every, args.checkpoints)
    date = datetime.now(UTC).strftime("%Y-%m-%d")
    result = {
        "benchmark": "state-bytes", "date": date, "commit_every": args.commit_every,
        "command": " ".join(["python bench/state_bytes.py", *(
            a for a in sys.argv[1:] if not a.startswith("--out") and a != str(args.out))]),
        "machine": machine(), "core": native.describe(), **figures,
    }  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    stem = free_stem(args.out, f"state-bytes-{date}")  # (``b``, ``c``... when taken)
    stem.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    stem.with_suffix(".md").write_text(markdown(result))
    print(f"wrote {stem}.json and {stem}.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
