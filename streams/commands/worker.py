"""``leadscore worker``: settings, plan and topics checked at start-up, then the processing loop.

Invalid settings or an invalid plan stop the process with exit code 2 and a message naming the
variable, or the file, score, rule and field at fault. SIGTERM/SIGINT stop it cleanly: the open
transaction commits, the partitions are released, the stores are closed. A fatal Kafka error
(fenced, a commit that timed out) exits with 70 before anything else is committed.
"""

from __future__ import annotations

import gc
import logging
import sys

from streams import native
from streams.engine.allocator import limit_arenas
from streams.errors import LeadscoreError, StartupError
from streams.scoring import Plan, PlanError, load_plan
from streams.settings import Settings, load_settings
from streams.wire.codec import Codec
from streams.wire.registry import registered_codec
from streams.wire.topics import ensure_topics


def load_plan_file(settings: Settings) -> Plan:
    path = settings.plan_path
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise StartupError(
            f"cannot read the plan {str(path)[:300]} ({exc.strerror}): fix LEADSCORE_PLAN_PATH"
        ) from None
    except UnicodeDecodeError as exc:
        raise StartupError(
            f"invalid plan: {path}: not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
    try:
        return load_plan(text, source=str(path))
    except PlanError as exc:
        raise StartupError(f"invalid plan:\n{exc}") from None


def _tune_gc() -> None:
    # Start-up objects (modules, the compiled plan, schemas) never die: keep them out of the
    # collector's scans, and collect young objects less often. `make bench-engine` compares this
    # with four other policies on batches shaped like ours (docs/performance.md, "Garbage
    # collector policy"): it beats CPython's defaults by 40-55%, and none of the others beat it
    # by more than the run-to-run noise.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def run_worker() -> int:
    try:
        settings = load_settings()
        plan = load_plan_file(settings)
        ensure_topics(settings)
        codec = registered_codec(settings)
    except LeadscoreError as exc:
        print(f"leadscore worker: {exc}", file=sys.stderr)
        return 2
    return _run_engine(settings, plan, codec)


def _run_engine(settings: Settings, plan: Plan, codec: Codec | None = None) -> int:
    from streams.api.http import Api, HttpServer, Owners, client_id
    from streams.api.topview import top_feed_of
    from streams.engine.identity import claim
    from streams.engine.loop import Engine
    from streams.metrics import Metrics

    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    limit_arenas(settings.malloc_arenas)  # before the Kafka clients and RocksDB start threads
    try:
        identity = claim(settings)
    except LeadscoreError as exc:
        print(f"leadscore worker: {exc}", file=sys.stderr)
        return 2
    metrics = Metrics.create()
    engine = Engine(settings, plan, metrics=metrics, client_id=client_id(settings),
                    transactional_id=identity.transactional_id, codec=codec)  # fmt: skip
    top_feed = top_feed_of(settings, codec or Codec.load())
    try:
        http = HttpServer(
            Api(settings, plan, engine, metrics, Owners(settings, engine.entity_topic), top_feed,
                tenants=engine.stage.tenants),
            settings.web_host, settings.web_port,
        )  # fmt: skip
    except OSError as exc:
        print(f"leadscore worker: cannot serve HTTP on {settings.web_host}:{settings.web_port}"
              f" ({exc.strerror}): fix LEADSCORE_WEB_PORT", file=sys.stderr)  # fmt: skip
        return 2
    http.start()
    top_feed.start()
    logging.getLogger(__name__).info(
        "worker %s (transactional.id %s) serving %s, %s", identity.instance_id,
        identity.transactional_id, settings.advertised_url, native.describe(),
    )  # fmt: skip
    _tune_gc()
    try:
        code = engine.run()
    finally:
        http.stop()
        top_feed.stop()
        engine.close()
    logging.shutdown()
    return code
