"""Writes the Grafana dashboard ``deploy/grafana/leadscore.json`` from the panel list below.

    python tools/dashboard.py           rewrite deploy/grafana/leadscore.json
    python tools/dashboard.py --check   exit 1 if the file differs from what this script writes
    python tools/dashboard.py --graph-url URL
                                        print the URL of a Prometheus graph page (at URL) showing
                                        the main panels (make observe prints it)

The panels are data here (title, description, unit, PromQL), so tests can read the same list:
``tests/deploy/test_dashboard.py`` lints the dashboard (the rules of Grafana's dashboard-linter,
which cannot be installed here) and checks every query with ``promtool``;
``tests/integration/test_prometheus.py`` runs every query against a real Prometheus scraping two
workers. Queries use ``$job``, ``$instance`` and ``$__rate_interval``; :func:`resolve` replaces
them the way Grafana does, for tools that are not Grafana.
"""

from __future__ import annotations

import json
import sys
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "deploy" / "grafana" / "leadscore.json"
UID = "leadscore-overview"
SEL = 'job=~"$job", instance=~"$instance"'
RATE = "[$__rate_interval]"
HIT = 'result="hit"'
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    unit: str
    targets: tuple[tuple[str, str], ...]  # (PromQL, legend)
    kind: str = "timeseries"


def rate(metric: str, by: str = "", extra: str = "") -> str:
    grouping = f" by ({by})" if by else ""
    labels = f"{SEL}, {extra}" if extra else SEL
    return f"sum{grouping} (rate({metric}{{{labels}}}{RATE}))"


def quantiles(metric: str, by: str = "") -> tuple[tuple[str, str], ...]:
    keys = f"le, {by}" if by else "le"
    prefix = f"{{{{{by}}}}} " if by else ""
    return tuple(
        (
            f"histogram_quantile({q}, sum by ({keys}) (rate({metric}_bucket{{{SEL}}}{RATE})))",
            f"{prefix}p{int(q * 100)}",
        )
        for q in (0.5, 0.99)
    )


ROWS: tuple[tuple[str, tuple[Panel, ...]], ...] = (
    (
        "Throughput",
        (
            Panel(
                "Events by topic and outcome",
                "Input items per second by source topic and outcome (scored, duplicate, capped, "
                "quiet, no_match, dead_letter, ...), counted once per item and entity. A drop to 0 "
                "with lag rising means the worker is stuck; a rise of dead_letter means a producer "
                "sends bad records.",
                "ops",
                ((rate("leadscore_events_total", "topic, outcome"), "{{topic}} {{outcome}}"),),
            ),
            Panel(
                "Score changes by cause",
                "Score changes published to score-changed per second, by cause (rule, expiry, "
                "adjustment, state, deferred). Expiry rising while rule is flat: awards are "
                "running out, not an outage.",
                "ops",
                ((rate("leadscore_changes_total", "cause"), "{{cause}}"),),
            ),
            Panel(
                "Threshold crossings",
                "Threshold crossings per second by score, threshold and direction: what "
                "downstream automations act on. A sudden burst often follows a plan change.",
                "ops",
                (
                    (
                        rate("leadscore_threshold_crossings_total", "score, threshold, direction"),
                        "{{score}} {{threshold}} {{direction}}",
                    ),
                ),
            ),
            Panel(
                "Dead letters by reason",
                "Records sent to the dead-letter topic per second, by source topic and error "
                "class (alert LeadscoreDeadLetters). The valid records around them were scored; "
                "read the dead-letter topic for the records and their reasons.",
                "ops",
                ((rate("leadscore_dead_letters_total", "topic, reason"), "{{topic}} {{reason}}"),),
            ),
        ),
    ),
    (
        "Latency",
        (
            Panel(
                "Processing time per record",
                "Time to process one record in the ingest and score stages, p50 and p99 "
                "(per-batch time divided by its records). A rising p99 with a flat rate points "
                "at large entity states or a slow store.",
                "s",
                quantiles("leadscore_processing_seconds", "stage"),
            ),
            Panel(
                "Event to change",
                "From an input record's Kafka timestamp to its score change entering the open "
                "transaction, p50 and p99; readers see it at the commit after. Includes lag: "
                "when the worker is behind, this grows with it.",
                "s",
                quantiles("leadscore_event_to_emit_seconds"),
            ),
            Panel(
                "Commit time",
                "Time of one successful commit (changelog and scores records, offsets, "
                "commit_transaction, store writes), p50 and p99. Slow commits mean broker "
                "trouble (replication, disk) before they mean anything in the worker.",
                "s",
                quantiles("leadscore_commit_seconds"),
            ),
            Panel(
                "Batch size",
                "Mean and p99 records returned by one consume call. Under full load batches are "
                "full (LEADSCORE_BATCH_SIZE); under a trickle they are small.",
                "short",
                (
                    (
                        f"sum(rate(leadscore_batch_records_sum{{{SEL}}}{RATE})) / "
                        f"sum(rate(leadscore_batch_records_count{{{SEL}}}{RATE}))",
                        "mean",
                    ),
                    quantiles("leadscore_batch_records")[1],
                ),
            ),
        ),
    ),
    (
        "Kafka",
        (
            Panel(
                "Consumer lag by topic",
                "Records behind the log end, summed over the assigned partitions of each topic "
                "(input topics and the internal entity-events topic), every 5 s (alert "
                "LeadscoreConsumerLagGrowing). One partition carrying most of it: a hot entity.",
                "short",
                ((f"sum by (topic) (leadscore_consumer_lag{{{SEL}}})", "{{topic}}"),),
            ),
            Panel(
                "Transactions by result",
                "Transactions of the processing loop per second, committed and aborted (alert "
                "LeadscoreTransactionAborts). Every abort rewinds the worker and redoes the work.",
                "ops",
                ((rate("leadscore_transactions_total", "result"), "{{result}}"),),
            ),
            Panel(
                "Rebalances",
                "Consumer-group rebalances per second seen by each worker. Steady rebalancing "
                "means a worker restarting in a loop or missing its session timeout.",
                "ops",
                ((rate("leadscore_rebalances_total", "instance"), "{{instance}}"),),
            ),
            Panel(
                "Workers up and ready",
                "Workers Prometheus scrapes (up) and workers whose last /readyz answered ready "
                "(alerts LeadscoreWorkerDown, LeadscoreNotReady).",
                "short",
                (
                    (f"sum(up{{{SEL}}})", "up"),
                    (f"sum(leadscore_ready{{{SEL}}})", "ready"),
                ),
            ),
        ),
    ),
    (
        "State",
        (
            Panel(
                "Entities in state",
                "Entities in the stores of the entity partitions each worker holds. It moves "
                "between workers at a rebalance; the sum grows with the contact base.",
                "short",
                ((f"sum by (instance) (leadscore_entities_in_state{{{SEL}}})", "{{instance}}"),),
            ),
            Panel(
                "Cache hit ratio",
                "Share of entity-state lookups served by the decoded cache (a miss reads "
                "RocksDB). Low under traffic spread over more entities than "
                "LEADSCORE_CACHE_ENTITIES.",
                "percentunit",
                (
                    (
                        rate("leadscore_cache_lookups_total", extra=HIT)
                        + " / "
                        + rate("leadscore_cache_lookups_total"),
                        "hit ratio",
                    ),
                ),
            ),
            Panel(
                "Restore progress",
                "Changelog records applied to the local stores per second while partitions "
                "restore (alert LeadscoreRestoreSlow). Restoring partitions are paused.",
                "ops",
                ((rate("leadscore_restored_records_total", "instance"), "{{instance}}"),),
            ),
            Panel(
                "Partitions restoring",
                "Assigned entity partitions still restoring from the changelog, per worker; "
                "should drop to 0 within seconds to minutes after a rebalance.",
                "short",
                ((f"sum by (instance) (leadscore_partitions_restoring{{{SEL}}})", "{{instance}}"),),
            ),
            Panel(
                "Expiry backlog",
                "Entities found due (expiries, deferred awards) at the last due check, per worker "
                "(alert LeadscoreExpiryBacklog). Spikes after a quiet period ends drain by "
                "themselves.",
                "short",
                ((f"sum by (instance) (leadscore_expiry_backlog{{{SEL}}})", "{{instance}}"),),
            ),
            Panel(
                "Resident memory",
                "Resident set size of each worker process: the decoded cache, RocksDB's block "
                "cache and write buffers, and Python. It should level off, not grow without bound.",
                "bytes",
                ((f"sum by (instance) (process_resident_memory_bytes{{{SEL}}})", "{{instance}}"),),
            ),
        ),
    ),
)


def panels() -> list[Panel]:
    return [panel for _, row in ROWS for panel in row]


def resolve(expr: str, *, job: str = ".+", instance: str = ".+", rate_interval: str = "1m") -> str:
    """An expression with the dashboard's variables replaced, as Grafana sends it."""
    return (
        expr.replace("$__rate_interval", rate_interval)
        .replace("$job", job)
        .replace("$instance", instance)
    )


#: The panels ``make observe`` puts on one Prometheus graph page (first query of each).
MAIN = (
    "Events by topic and outcome",
    "Score changes by cause",
    "Event to change",
    "Consumer lag by topic",
    "Transactions by result",
    "Dead letters by reason",
    "Resident memory",
)


def graph_url(prometheus: str, *, job: str = "leadscore", range_input: str = "15m") -> str:
    """A Prometheus graph page with one graph per main panel, variables resolved."""
    by_title = {panel.title: panel for panel in panels()}
    params: dict[str, str] = {}
    for n, title in enumerate(MAIN):
        expr = by_title[title].targets[-1][0]  # the last target: p99 where there are two
        params[f"g{n}.expr"] = resolve(expr, job=job, rate_interval="1m")
        params[f"g{n}.tab"] = "0"
        params[f"g{n}.range_input"] = range_input
    return f"{prometheus.rstrip('/')}/graph?{urllib.parse.urlencode(params)}"


def _variable(name: str, query: str) -> dict[str, object]:
    return {
        "name": name,
        "label": name.title(),
        "type": "query",
        "datasource": DATASOURCE,
        "query": query,
        "definition": query,
        "refresh": 2,
        "multi": True,
        "includeAll": True,
        "allValue": ".+",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
    }


def dashboard() -> dict[str, object]:
    out: list[dict[str, object]] = []
    pid, y = 1, 0
    for row_title, row in ROWS:
        out.append(
            {
                "id": pid,
                "type": "row",
                "title": row_title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        pid, y = pid + 1, y + 1
        for i, panel in enumerate(row):
            out.append(
                {
                    "id": pid,
                    "type": panel.kind,
                    "title": panel.title,
                    "description": panel.description,
                    "datasource": DATASOURCE,
                    "gridPos": {"h": 8, "w": 12, "x": 12 * (i % 2), "y": y + 8 * (i // 2)},
                    "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
                    "options": {
                        "legend": {"displayMode": "list", "placement": "bottom"},
                        "tooltip": {"mode": "multi", "sort": "desc"},
                    },
                    "targets": [
                        {
                            "datasource": DATASOURCE,
                            "expr": expr,
                            "legendFormat": legend,
                            "refId": chr(ord("A") + n),
                        }
                        for n, (expr, legend) in enumerate(panel.targets)
                    ],
                }
            )
            pid += 1
        y += 8 * ((len(row) + 1) // 2)
    return {
        "uid": UID,
        "title": "leadscore",
        "description": "leadscore workers: throughput, latency, Kafka, state "
        "(runbooks: docs/operations.md, Alerts and runbooks)",
        "tags": ["leadscore", "kafka"],
        "editable": False,
        "graphTooltip": 1,
        "refresh": "30s",
        "schemaVersion": 39,
        "time": {"from": "now-1h", "to": "now"},
        "timezone": "utc",
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                },
                _variable("job", "label_values(leadscore_build_info, job)"),
                _variable("instance", 'label_values(leadscore_build_info{job=~"$job"}, instance)'),
            ]
        },
        "annotations": {"list": []},
        "panels": out,
        "version": 1,
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if len(argv) == 3 and argv[1] == "--graph-url":
        print(graph_url(argv[2]))
        return 0
    if argv[1:] == ["--check"]:
        if OUT.read_text(encoding="utf-8") != text:
            print(f"{OUT.relative_to(REPO)} is stale: run tools/dashboard.py", file=sys.stderr)
            return 1
        return 0
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT.relative_to(REPO)} ({len(panels())} panels)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
