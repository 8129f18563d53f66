"""Cost per layer of a contender's process, from a py-spy sampling profile taken under load.

``py-spy record --format raw`` writes one line per distinct stack: ``frame;frame;... count``,
outermost frame first, each ``function (file:line)``. Each sample is charged to the layer of its
innermost frame that belongs to a known layer (time inside a C extension, such as fastavro or
librdkafka, is charged to the Python frame that called it). py-spy samples only threads that
run, so time the loop spends blocked in ``consume`` waiting for records is not in the profile.
With ``--native`` it also shows C frames, the compiled core's among them, and samples threads
blocked in a system call: those samples are counted apart (``WAITING``).

``python bench/profile.py RAW`` prints the layers' shares of a raw profile.
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
#: A profile taken with ``py-spy --native`` also shows the compiled core's C functions (mypyc
#: names them ``CPyDef_<module>___<function>`` in ``native__mypyc``); without ``--native`` a
#: sample inside the compiled core is charged to the Python frame that called it (the shell).
LAYERS = compiled(
    (
        ("state encode/decode (msgpack)", r"scoring/serialize\.py|serialize___"),
        ("scoring core", r"streams/scoring/|CPyDef_|CPyPy_|native__mypyc"),
        ("RocksDB store", r"streams/state/store\.py|rocksdict"),
        ("state cache", r"streams/state/cache\.py|streams/entities\.py"),
        ("decode (Avro, msgpack) + ingest", r"decode_input|_decode_avro|_decode_json|_normalise|"
                                            r"records\.py\).*|ingest\.py|\bdecode \("),
        ("encode (Avro, msgpack)", r"\bencode \(|encode_item|encode_member|publish\.py|"
                                   r"deadletter\.py|outputs\.py"),
        ("client: produce", r"Transaction\.(_send|produce) \("),
        ("transaction (commit steps)", r"streams/(engine/)?(transaction|commit)\.py"),
        ("metrics", r"prometheus_client|streams/metrics\.py"),
        ("routing", r"streams/(wire/)?routing\.py"),
        ("loop and client calls", r"streams/engine/|confluent_kafka"),
    )
)  # fmt: skip


#: The innermost frame of a thread that waits: ``py-spy --native`` samples idle threads too
#: (blocked in a system call, shown as an address in libc or the call's name). Not CPU time:
#: ``summarise`` leaves such samples out and counts them apart.
WAITING = re.compile(
    r"^(0x[0-9a-f]+ \(libc[.-]|(poll|epoll_wait|select|__futex\w*|futex\w*|pthread_cond_\w+|"
    r"__pthread_cond_\w+|nanosleep|clock_nanosleep|__GI___poll|__libc_recv\w*|read) \()"
)


def layer_of(stack: list[str]) -> str:
    for frame in reversed(stack):
        for name, pattern in LAYERS:
            if pattern.search(frame):
                return name
    return "other (interpreter, GC, start-up)"


def summarise(raw: Path) -> dict[str, float]:
    """Share of the samples per layer (0..1), and the number of samples."""
    busy: Counter[str] = Counter()
    waiting = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack_text, _, count_text = line.rpartition(" ")
        if count_text.isdigit():
            stack = stack_text.split(";")
            if WAITING.match(stack[-1]):
                waiting += int(count_text)
            else:
                busy[layer_of(stack)] += int(count_text)
    total = sum(busy.values())
    out = {name: round(n / total, 4) for name, n in busy.most_common()} if total else {}
    out["samples"] = total
    if waiting:
        out["waiting_samples"] = waiting
    return out


if __name__ == "__main__":  # python bench/profile.py RAW: the layers' shares of a raw profile
    import json
    import sys

    print(json.dumps(summarise(Path(sys.argv[1])), indent=2))
