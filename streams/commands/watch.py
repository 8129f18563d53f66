"""``leadscore watch``: a live view of ``score-changed``, one line per change, or JSON lines.

It reads with ``read_committed`` through :mod:`streams.client`, from the end of the topic (or
``--from-beginning``), as a consumer group of its own that commits nothing, so watching never
moves anybody's offsets. Settings (brokers, security, the topic name) are the worker's
``LEADSCORE_*`` variables. Ctrl-C ends it (exit 0).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import uuid
from collections.abc import Iterable
from dataclasses import asdict
from typing import IO, Any

from streams.client import ChangeFilter, ClientError, ScoreChanged, ScoreChanges
from streams.commands.options import add_tenant_option
from streams.errors import LeadscoreError

GREEN, RED, BOLD, DIM, RESET = "\033[32m", "\033[31m", "\033[1m", "\033[2m", "\033[0m"
DEFAULT_TENANT = "-"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_tenant_option(
        parser, f"only this tenant (repeatable; '{DEFAULT_TENANT}' is the default tenant)",
        append=True,
    )  # fmt: skip
    parser.add_argument(
        "--entity", action="append", default=[], choices=["contact", "deal", "account"]
    )
    parser.add_argument("--id", action="append", default=[], dest="ids", help="entity id")
    parser.add_argument("--score", action="append", default=[], dest="scores", help="score name")
    parser.add_argument("--cause", action="append", default=[], dest="causes")
    parser.add_argument(
        "--threshold", action="append", default=[], dest="thresholds",
        help="only changes that crossed this threshold (repeatable)",
    )  # fmt: skip
    parser.add_argument("--direction", action="append", default=[], choices=["up", "down"],
                        dest="directions", help="only crossings in this direction")  # fmt: skip
    parser.add_argument("--tier", action="append", default=[], dest="tiers",
                        help="only changes whose score is in this tier after them")  # fmt: skip
    parser.add_argument("--crossings", action="store_true", help="only threshold crossings")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--from-beginning", action="store_true",
                        help="start at the beginning of the topic, not its end")  # fmt: skip
    parser.add_argument("--shadow", action="store_true",
                        help="shadow plans' changes (score-changed-shadow) instead")  # fmt: skip
    parser.add_argument("--color", choices=["auto", "always", "never"], default="auto")
    parser.add_argument("--limit", type=int, default=None, help="stop after this many changes")
    parser.add_argument("--idle-exit", type=float, default=None, metavar="SECONDS",
                        help="stop after this long without a change")  # fmt: skip


def change_filter(args: argparse.Namespace) -> ChangeFilter:
    tenants = frozenset(None if t == DEFAULT_TENANT else t for t in args.tenant)
    return ChangeFilter(
        tenants=tenants,
        entities=frozenset(args.entity),
        entity_ids=frozenset(args.ids),
        scores=frozenset(args.scores),
        causes=frozenset(args.causes),
        thresholds=frozenset(args.thresholds),
        directions=frozenset(args.directions),
        tiers=frozenset(args.tiers),
        crossings_only=args.crossings,
    )


def _stamp(instant: dt.datetime) -> str:
    return instant.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def line(change: ScoreChanged, *, color: bool) -> str:
    """One change, for a terminal: when, who, which score, old -> new, cause, rules, crossings."""
    paint = (lambda code, text: f"{code}{text}{RESET}") if color else (lambda _, text: text)
    tenant = change.tenant_id if change.tenant_id is not None else DEFAULT_TENANT
    sign = "+" if change.delta >= 0 else ""
    crossings = " ".join(
        paint(GREEN if t.direction == "up" else RED,
              f"{'▲' if t.direction == 'up' else '▼'} {t.name}")
        for t in change.thresholds
    )  # fmt: skip
    rules = ",".join(change.rule_ids) or "-"
    if change.tier_before != change.tier_after:
        tier = paint(BOLD, f"{change.tier_before} → {change.tier_after}")
        crossings = f"{crossings}  {tier}" if crossings else tier
    text = (
        f"{paint(DIM, _stamp(change.occurred_at))}  {tenant}/{change.entity}/{change.entity_id}  "
        f"{change.score}  {change.old_value} → {paint(BOLD, str(change.new_value))} "
        f"({sign}{change.delta})  {change.cause}  [{rules}]"
    )
    return f"{text}  {crossings}" if crossings else text


def as_json(change: ScoreChanged) -> str:
    record: dict[str, Any] = asdict(change)
    record["occurred_at"] = _stamp(change.occurred_at)
    record["emitted_at"] = _stamp(change.emitted_at)
    record["rule_ids"] = list(change.rule_ids)
    record["thresholds"] = [{"name": t.name, "direction": t.direction} for t in change.thresholds]
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False)


def use_color(choice: str, out: IO[str]) -> bool:
    if choice != "auto":
        return choice == "always"
    return out.isatty() and "NO_COLOR" not in os.environ


def show(changes: Iterable[ScoreChanged], args: argparse.Namespace, out: IO[str]) -> int:
    color = use_color(args.color, out)
    shown = 0
    for change in changes:
        out.write((as_json(change) if args.json else line(change, color=color)) + "\n")
        out.flush()
        shown += 1
        if args.limit is not None and shown >= args.limit:
            break
    return shown


def registry_auth(settings: Any) -> tuple[str, str] | None:
    password = settings.schema_registry_password
    if settings.schema_registry_username is None or password is None:
        return None
    return settings.schema_registry_username, password.get_secret_value()


def cmd_watch(args: argparse.Namespace) -> int:
    from streams.engine.kafka import client_base_config
    from streams.settings import load_settings

    try:
        settings = load_settings()
        where = change_filter(args)
    except (LeadscoreError, ValueError, TypeError) as exc:
        print(f"leadscore watch: {exc}", file=sys.stderr)
        return 2
    if args.limit is not None and args.limit < 1:
        print("leadscore watch: --limit must be at least 1", file=sys.stderr)
        return 2
    config = {k: v for k, v in client_base_config(settings).items() if k != "bootstrap.servers"}
    topic = settings.topic_score_changed_shadow if args.shadow else settings.topic_score_changed
    stream = ScoreChanges(
        settings.bootstrap_servers,
        f"{settings.app_id}-watch-{uuid.uuid4().hex[:12]}",
        topic=topic,
        where=where,
        start="earliest" if args.from_beginning else "latest",
        config=config,
        idle_timeout_s=args.idle_exit,
        commit_offsets=False,
        registry_url=settings.schema_registry_url,
        registry_auth=registry_auth(settings),
        registry_timeout_s=settings.schema_registry_timeout_s,
    )
    if not args.json:
        start = "the beginning" if args.from_beginning else "now"
        print(f"watching {topic} on {settings.bootstrap_servers} from "
              f"{start} (Ctrl-C stops)", file=sys.stderr)  # fmt: skip
    try:
        with stream:
            show(stream, args, sys.stdout)
    except KeyboardInterrupt:
        return 0
    except ClientError as exc:
        print(f"leadscore watch: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # piped into head and the like
        sys.stderr.close()
        return 0
    return 0
