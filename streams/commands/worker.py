"""``leadscore worker``: settings, plan, data directory and topics checked at start-up, then the
processing loop (``streams.bootstrap``).

Invalid settings, an invalid plan or an unusable data directory stop the process with exit code 2
and a message naming the variable, or the file, score, rule and field at fault; the data
directory is claimed before anything reaches the network. SIGTERM/SIGINT stop it cleanly: the
open transaction commits, the partitions are released, the stores are closed. A fatal Kafka error
that a new producer cannot help with (fenced by a newer instance, too many recoveries) exits with
70 before anything else is committed.
"""

from __future__ import annotations

import sys

from streams.errors import LeadscoreError


def run_worker() -> int:
    from streams.bootstrap import run
    from streams.engine.identity import claim
    from streams.engine.planfile import load_plan_file
    from streams.settings import load_settings
    from streams.wire.registry import registered_codec
    from streams.wire.topics import ensure_topics

    try:
        settings = load_settings()
        plan = load_plan_file(settings)
        identity = claim(settings)  # before the network: a bad LEADSCORE_DATA_DIR says so
        ensure_topics(settings)
        codec = registered_codec(settings)
    except LeadscoreError as exc:
        print(f"leadscore worker: {exc}", file=sys.stderr)
        return 2
    return run(settings, plan, codec, identity)
