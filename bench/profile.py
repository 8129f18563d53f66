"""Cost per layer of a contender's process, from a py-spy sampling profile taken under load.

``py-spy record --format raw`` writes one line per distinct stack: ``frame;frame;... count``,
outermost frame first, each ``function (file:line)``. Each sample is charged to the layer of its
innermost frame that belongs to a known layer (time inside a C extension, such as fastavro or
librdkafka, is charged to the Python frame that called it). py-spy samples only threads that
run, so time the loop spends blocked in ``consume`` waiting for records is not in the profile.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

Patterns = tuple[tuple[str, re.Pattern[str]], ...]


def compiled(pairs: tuple[tuple[str, str], ...]) -> Patterns:
    """(name, regular expression) pairs, compiled."""
    return tuple((name, re.compile(pattern)) for name, pattern in pairs)


#: (layer, pattern on "function (file:line)"), checked against each frame from the innermost out.
LAYERS = compiled(
    (
        ("state encode/decode (msgpack)", r"scoring/serialize\.py"),
        ("scoring core", r"streams/scoring/"),
        ("RocksDB store", r"streams/state/store\.py|rocksdict"),
        ("state cache", r"streams/state/cache\.py|streams/entities\.py"),
        ("decode (Avro, msgpack) + ingest", r"decode_input|_decode_avro|_decode_json|_normalise|"
                                            r"records\.py\).*|ingest\.py|\bdecode \("),
        ("encode (Avro, msgpack)", r"\bencode \(|encode_item|publish\.py|deadletter\.py"),
        ("client: produce", r"Transaction\.(_send|produce) \("),
        ("transaction (commit steps)", r"streams/transaction\.py"),
        ("metrics", r"prometheus_client|streams/metrics\.py"),
        ("routing", r"streams/routing\.py"),
        ("loop and client calls", r"streams/engine/|confluent_kafka"),
    )
)  # fmt: skip


def layer_of(stack: list[str]) -> str:
    for frame in reversed(stack):
        for name, pattern in LAYERS:
            if pattern.search(frame):
                return name
    return "other (interpreter, GC, start-up)"


def summarise(raw: Path) -> dict[str, float]:
    """Share of the samples per layer (0..1), and the number of samples."""
    busy: Counter[str] = Counter()
    for line in raw.read_text(errors="replace").splitlines():
        stack_text, _, count_text = line.rpartition(" ")
        if count_text.isdigit():
            busy[layer_of(stack_text.split(";"))] += int(count_text)
    total = sum(busy.values())
    out = {name: round(n / total, 4) for name, n in busy.most_common()} if total else {}
    out["samples"] = total
    return out
