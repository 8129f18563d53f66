"""``leadscore history``: how a score got where it is, change by change, newest first.

By default it asks a worker's HTTP API (``GET /scores/{entity}/{id}/history``; any worker
forwards to the owner of the entity's partition): the last changes of each score, kept with the
entity's state. ``--from-topic`` (with ``--score``) reads ``score-changed`` itself instead, which
holds every change its retention kept: the older ones, before the worker's ring.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from streams.commands.options import add_tenant_option


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("entity", choices=["contact", "deal", "account"])
    parser.add_argument("id", help="the entity's id")
    parser.add_argument("--score", default=None, help="one score (default: every score)")
    add_tenant_option(parser, "the tenant (default: the default tenant)")
    parser.add_argument("-n", type=int, default=None,
                        help="changes per score (default 50, at most what the worker keeps; "
                             "with --from-topic or --before up to 1000)")  # fmt: skip
    parser.add_argument("--before", type=int, default=None, metavar="SEQ",
                        help="the changes before this seq, from score-changed "
                             "(needs --score)")  # fmt: skip
    parser.add_argument("--from-topic", action="store_true",
                        help="read score-changed here instead of asking a worker "
                             "(needs --score)")  # fmt: skip
    parser.add_argument("--url", default=None,
                        help="a worker's HTTP API (default: LEADSCORE_WEB_ADVERTISED_HOST or "
                             "LEADSCORE_WEB_HOST and LEADSCORE_WEB_PORT)")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="the answer as JSON")
    parser.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                        help="how long to read score-changed at most (default 60)")  # fmt: skip


def cmd_history(args: argparse.Namespace) -> int:
    if (args.from_topic or args.before is not None) and not args.score:
        print("leadscore history: --from-topic and --before need --score", file=sys.stderr)
        return 2
    if args.n is not None and not 1 <= args.n <= 1000:
        print("leadscore history: -n must be from 1 to 1000", file=sys.stderr)
        return 2
    if args.from_topic:
        return _from_topic(args)
    from streams.errors import LeadscoreError
    from streams.settings import load_settings

    try:
        settings = load_settings()
    except LeadscoreError as exc:
        print(f"leadscore history: {exc}", file=sys.stderr)
        return 2
    url = (args.url or settings.advertised_url).rstrip("/")
    path = f"/scores/{args.entity}/{urllib.parse.quote(args.id, safe='')}/history"
    query = {k: v for k, v in (("score", args.score), ("tenant", args.tenant), ("n", args.n),
                               ("before", args.before)) if v is not None}  # fmt: skip
    headers = {}
    if not url.startswith(("http://", "https://")):
        print(f"leadscore history: --url must be http:// or https:// (got {url!r})",
              file=sys.stderr)  # fmt: skip
        return 2
    if settings.api_token is not None:
        headers["Authorization"] = f"Bearer {settings.api_token.get_secret_value()}"
    target = f"{url}{path}?{urllib.parse.urlencode(query)}"
    request = urllib.request.Request(target, headers=headers)  # noqa: S310 - checked above
    try:
        with urllib.request.urlopen(request, timeout=args.timeout + 5) as reply:  # noqa: S310
            body = json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:500]
        print(f"leadscore history: {url} answered {exc.code}: {detail}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError, ValueError) as exc:
        print(f"leadscore history: cannot ask {url}: {exc}", file=sys.stderr)
        return 1
    _show(body, as_json=args.json)
    return 0


def _from_topic(args: argparse.Namespace) -> int:
    from streams.api.history import read_older
    from streams.scoring import EntityKey
    from streams.wire.reading import service_codec

    found = service_codec("history")
    if isinstance(found, int):
        return found
    settings, codec = found
    key = EntityKey(args.tenant, args.entity, args.id)
    changes, why = read_older(settings, codec, key, args.score, before=args.before,
                              n=args.n or 50, timeout_s=args.timeout)  # fmt: skip
    if why is not None:
        print(f"leadscore history: {why}", file=sys.stderr)
        return 1
    body = {"tenant_id": args.tenant, "entity": args.entity, "entity_id": args.id,
            "score": args.score, "before": args.before, "source": settings.topic_score_changed,
            "changes": changes, "complete": True}  # fmt: skip
    _show(body, as_json=args.json)
    return 0


def _show(body: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(body, indent=2))
        return
    who = f"{body['entity']} {body['entity_id']}"
    if body.get("tenant_id"):
        who += f" (tenant {body['tenant_id']})"
    if "scores" in body:
        for name, score in body["scores"].items():
            older = f"; seqs 1-{score['older']} on score-changed" if score["older"] else ""
            print(f"{who}, {name}: seq {score['seq']}, {len(score['changes'])} changes{older}")
            for change in score["changes"]:
                print("  " + line(change))
        return
    print(f"{who}, {body['score']}: {len(body['changes'])} changes from {body['source']}")
    for change in body["changes"]:
        print("  " + line(change))


def line(change: dict[str, Any]) -> str:
    """One change on one line: seq, time, the move, cause, rules, source event, plan version."""
    when = dt.datetime.fromtimestamp(change["occurred_at"] / 1000, dt.UTC)
    rules = ",".join(change.get("rule_ids") or []) or "-"
    tier = ""
    if change.get("tier_before") != change.get("tier_after"):
        tier = f"  tier {change.get('tier_before')} -> {change.get('tier_after')}"
    return (f"#{change['seq']:<5} {when:%Y-%m-%d %H:%M:%S}  {change['old_value']:>6} -> "
            f"{change['new_value']:<6} ({change['delta']:+d})  {change['cause']:<10} rules {rules}"
            f"  source {change.get('source_event_id') or '-'}  plan {change['plan_version']}"
            f"{tier}")  # fmt: skip
