"""``create_app(settings)``: the Faust application. Nothing is created at import time."""

from __future__ import annotations

from typing import Any

import faust
from faust.web import Request, Response, View

from streams.settings import Settings


def create_app(settings: Settings) -> faust.App:
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.bootstrap_servers}",
        store="rocksdb://",
        datadir=str(settings.data_dir),
        processing_guarantee="at_least_once",
        topic_replication_factor=settings.replication_factor,
        topic_partitions=settings.partitions,
        table_standby_replicas=settings.standby_replicas,
        web_enabled=True,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_tables_enabled=False,
        web_router_enabled=False,
        web_graph_enabled=False,
        web_stats_enabled=False,
        broker_commit_interval=settings.commit_interval_s,
        consumer_auto_offset_reset="earliest",
    )

    @app.page("/healthz")
    class Healthz(View):
        async def get(self, request: Request, **kwargs: Any) -> Response:
            return self.json({"status": "ok"})

    return app
