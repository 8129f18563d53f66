"""The ``leadscore`` command line: one entry point, thin dispatch to the modules doing the work."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence


def _version() -> str:
    import platform

    import streams.scoring.scorer  # noqa: F401 - what is loaded is what is reported
    from streams import __version__, native

    return f"leadscore {__version__}, {native.describe()}, Python {platform.python_version()}"


def _build_parser() -> argparse.ArgumentParser:
    from streams.commands.options import add_tenant_option

    parser = argparse.ArgumentParser(prog="leadscore", description="Kafka-native lead scoring.")
    parser.add_argument("--version", action="store_true", help="version and core build, then exit")
    sub = parser.add_subparsers(dest="command")

    from streams.commands.worker_help import DESCRIPTION, EPILOG, WorkerHelpFormatter

    sub.add_parser("worker", help="run the stream service (reads LEADSCORE_* settings)",
                   description=DESCRIPTION, epilog=EPILOG,
                   formatter_class=WorkerHelpFormatter)  # fmt: skip

    plan = sub.add_parser("plan", help="scoring plan tools")
    plan_sub = plan.add_subparsers(dest="plan_command", required=True)
    check = plan_sub.add_parser("check", help="validate a plan file and report every mistake")
    check.add_argument("file", help="path of the plan YAML file")
    publish = plan_sub.add_parser("publish", help="validate a plan and publish it for a tenant")
    add_tenant_option(publish, "the tenant whose plan this is", required=True)
    publish.add_argument("file", nargs="?", default=None, help="path of the plan YAML file")
    publish.add_argument("--shadow", default=None, metavar="FILE",
                         help="instead: run this plan as the tenant's shadow (challenger), "
                              "scored beside its plan, its changes on score-changed-shadow "
                              "only")  # fmt: skip
    remove = plan_sub.add_parser("remove", help="return a tenant to the default plan")
    add_tenant_option(remove, "the tenant to return to the default plan", required=True)
    promote = plan_sub.add_parser("promote", help="make a tenant's shadow plan its plan, "
                                                  "recomputed over the shadow's life")  # fmt: skip
    add_tenant_option(promote, "the tenant whose shadow plan becomes its plan", required=True)
    promote.add_argument("--from-time", default=None, metavar="T",
                         help="recompute from this instant (default: when the shadow was "
                              "published)")  # fmt: skip
    discard = plan_sub.add_parser("discard", help="stop a tenant's shadow plan")
    add_tenant_option(discard, "the tenant whose shadow plan stops", required=True)
    for sub_parser in (promote, discard):
        sub_parser.add_argument("--version", default=None,
                                help="the shadow's version (needed when the tenant runs "
                                     "several)")  # fmt: skip
    for sub_parser in (publish, remove, promote, discard):
        sub_parser.add_argument(
            "--wait", type=float, default=60.0, help="seconds to wait for the status (0: no wait)"
        )

    score = sub.add_parser("score", help="score a JSON-lines file of events offline")
    score.add_argument("--plan", required=True, help="path of the plan YAML file")
    score.add_argument("events", help="JSON-lines file of events and adjustments ('-' for stdin)")
    score.add_argument("--changes", action="store_true", help="also print every score change")
    score.add_argument(
        "--until",
        default=None,
        help="advance the clock to this instant at the end of input (ISO-8601 or epoch millis)",
    )
    score.add_argument(
        "--now",
        default=None,
        help="the arrival time of every line: events more than the plan's max_future after it "
        "are bad lines (default: --until, else the wall clock)",
    )
    demo = sub.add_parser("demo", help="publish realistic sample traffic (Avro) to the inputs")
    demo.add_argument("--events", type=int, default=5000, help="how many records (default 5000)")
    demo.add_argument("--rate", type=float, default=200.0, help="records per second (0 = max)")
    demo.add_argument("--contacts", type=int, default=500, help="distinct contacts")
    demo.add_argument("--deals", type=int, default=100, help="distinct deals")
    demo.add_argument("--seed", type=int, default=7, help="random seed (same seed, same data)")
    demo.add_argument("--calibration-archive", default=None, metavar="FILE",
                      help="instead: write the calibration dataset (planted signal, purchases) "
                           "as JSON lines to FILE")  # fmt: skip
    demo.add_argument("--learning-archive", default=None, metavar="FILE",
                      help="instead: write the learning dataset (weekly cohorts, planted "
                           "signal, purchases) as JSON lines to FILE")  # fmt: skip
    automate = sub.add_parser(
        "automate", help="webhook bridge: POST threshold crossings to endpoints (YAML file)"
    )
    automate.add_argument("file", help="the automations YAML file (endpoints and triggers)")
    automate.add_argument("--check", action="store_true", help="validate the file, then exit")
    automate.add_argument("--port", type=int, default=None, help="serve /metrics and /healthz")
    automate.add_argument("--idle-exit", type=float, default=None, metavar="SECONDS",
                          help="stop once idle this long with nothing in flight")  # fmt: skip
    top = sub.add_parser("top", help="a tenant's highest-scoring entities (the scores topic)")
    top.add_argument("entity", choices=["contact", "deal", "account"])
    top.add_argument("--score", required=True, help="a score of the plan for that entity")
    add_tenant_option(top, "the tenant (default: the default tenant)")
    top.add_argument("-n", default="10", help="how many (1-1000, default 10)")
    top.add_argument("--tier", default=None, help="only entities in this tier of the score")
    top.add_argument("--json", action="store_true", help="the answer as JSON, as GET /top gives")
    top.add_argument("--plan", default=None,
                     help="the tenant's plan file, if it has one of its own (default: the "
                          "worker's, LEADSCORE_PLAN_PATH)")  # fmt: skip
    top.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                     help="how long to read the topic to its end at most (default 60)")  # fmt: skip
    replay = sub.add_parser("replay", help="dry run: what a candidate plan would change")
    replay.add_argument("--plan", required=True, help="the candidate plan")
    replay.add_argument("--current", required=True, help="the plan in use now")
    source = replay.add_mutually_exclusive_group(required=True)
    source.add_argument("--archive", default=None,
                        help="JSON-lines file of the inputs (as 'score' reads)")  # fmt: skip
    source.add_argument("--from-time", default=None, metavar="T",
                        help="the input topics from this instant (Kafka timestamps)")  # fmt: skip
    replay.add_argument("--timeout", type=float, default=120.0, metavar="SECONDS",
                        help="longest time to read each input topic (default 120)")  # fmt: skip
    add_tenant_option(replay, "the tenant (default: the default one)")
    replay.add_argument("--at", default=None,
                        help="advance both to this instant at the end (default: the newest "
                             "event time)")  # fmt: skip
    replay.add_argument("--out", default="replay", help="report directory (default ./replay)")
    replay.add_argument("--quiet", action="store_true", help="no progress bar")
    replay.add_argument("--apply", action="store_true",
                        help="after the report, cut over: publish the plan for --tenant and "
                             "recompute from --from-time (cause recompute)")  # fmt: skip
    replay.add_argument("--wait", type=float, default=60.0,
                        help="with --apply: seconds to wait for the worker's status")  # fmt: skip
    cal = sub.add_parser("calibrate", help="do scores predict conversions? an HTML/JSON report")
    cal.add_argument("--plan", default=None,
                     help="the plan (default: the worker's, LEADSCORE_PLAN_PATH)")  # fmt: skip
    cal.add_argument("--score", required=True, help="the score to calibrate")
    cal.add_argument("--archive", default=None,
                     help="score this JSON-lines file of inputs offline (as leadscore score "
                          "reads it) instead of reading the service's topics")  # fmt: skip
    cal.add_argument("--timeout", type=float, default=120.0, metavar="SECONDS",
                     help="longest time to read each topic to its end (default 120)")  # fmt: skip
    cal.add_argument("--since", required=True, help="scores taken at this instant (ISO-8601)")
    cal.add_argument("--until", required=True, help="conversions counted up to this instant")
    add_tenant_option(cal, "the tenant (default: the default one)")
    cal.add_argument(
        "--out", default="calibration", help="report directory (default ./calibration)"
    )
    cal.add_argument("--conversion", action="append", default=None,
                     metavar="purchase|deal-won|deal-won:STAGE",
                     help="what counts as a conversion (repeatable; default: a purchase or a "
                          "won deal)")  # fmt: skip
    cal.add_argument("--compare", default=None, metavar="CANDIDATE",
                     help="also report this candidate plan over the same period, side by "
                          "side (comparison.json and comparison.html)")  # fmt: skip
    cal.add_argument("--compare-score", default=None, metavar="NAME",
                     help="the candidate's score to compare (default: --score)")  # fmt: skip
    learn = sub.add_parser("learn", help="learn a predicted score from outcomes: a candidate "
                                         "plan and an HTML/JSON report")  # fmt: skip
    learn.add_argument(
        "--plan", default=None, help="the current plan (default: the worker's, LEADSCORE_PLAN_PATH)"
    )
    learn.add_argument(
        "--score", required=True, help="the hand-written score whose rules propose the features"
    )
    learn.add_argument("--archive", default=None,
                       help="learn from this JSON-lines file of inputs (as leadscore score "
                            "reads it) instead of the service's input topics")  # fmt: skip
    learn.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="longest time to read each input topic (default 120)",
    )
    add_tenant_option(learn, "the tenant (default: the default one)")
    learn.add_argument("--since", default=None,
                       help="the first cutoff (default: the first event time plus the longest "
                            "window)")  # fmt: skip
    learn.add_argument(
        "--until", default=None, help="the end of the history (default: the last event time)"
    )
    learn.add_argument("--every", default="7d", help="cutoffs this far apart (default 7d)")
    learn.add_argument(
        "--horizon",
        default="30d",
        help="label: converted within this after the cutoff (default 30d)",
    )
    learn.add_argument("--active-within", default=None, metavar="DURATION",
                       help="count an entity at a cutoff if its latest event lies within this "
                            "before it (default: the horizon; all: any activity)")  # fmt: skip
    learn.add_argument("--window", action="append", default=None, metavar="DURATION",
                       help="hits windows of each rule (repeatable; default 7d and 14d; at "
                            "most the plan's lateness)")  # fmt: skip
    learn.add_argument("--attribute", action="append", default=None, metavar="NAME[=VALUE]",
                       help="a profile attribute as a feature: NAME=VALUE 1 if it equals, "
                            "NAME its number (repeatable)")  # fmt: skip
    learn.add_argument("--conversion", action="append", default=None,
                       metavar="purchase|deal-won|deal-won:STAGE",
                       help="what counts as a conversion (repeatable; default: a purchase or a "
                            "won deal)")  # fmt: skip
    learn.add_argument(
        "--holdout",
        type=float,
        default=0.3,
        help="share of the last cutoffs held out (default 0.3)",
    )
    learn.add_argument(
        "--C",
        type=float,
        default=1.0,
        help="inverse L2 strength on standardised features (default 1)",
    )
    learn.add_argument(
        "--name", default=None, help="the predicted score's name (default: SCORE-predicted)"
    )
    learn.add_argument(
        "--version",
        default=None,
        help="the candidate plan's version (default: the plan's + '+learned')",
    )
    learn.add_argument(
        "--out", default="candidate.yaml", help="the candidate plan file (default ./candidate.yaml)"
    )
    learn.add_argument("--report", default="learning", help="report directory (default ./learning)")
    hist = sub.add_parser("history", help="the last changes of an entity's scores, newest first")
    from streams.commands.history import add_arguments as history_arguments

    history_arguments(hist)
    watch = sub.add_parser("watch", help="live view of score changes (filters, --json)")
    from streams.commands.watch import add_arguments

    add_arguments(watch)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.version:
        print(_version())
        return 0
    if args.command is None:
        parser.error("a command is required (worker, plan, score, replay, demo, watch, top, "
                     "history, calibrate, learn, automate)")  # fmt: skip
    if args.command == "plan" and (
        args.plan_command in ("promote", "discard") or getattr(args, "shadow", None)
    ):
        from streams.commands.shadow_plans import cmd_plan_shadow

        return cmd_plan_shadow(args)
    if args.command == "plan" and args.plan_command != "check":
        from streams.commands.plan_publish import cmd_plan_publish

        return cmd_plan_publish(args)
    if args.command in ("plan", "score"):
        return _offline(args)
    if args.command == "demo" and args.calibration_archive is not None:
        from streams.commands.planted import write_archive

        return write_archive(args.calibration_archive, contacts=args.contacts, seed=args.seed)
    if args.command == "demo" and args.learning_archive is not None:
        from streams.commands.planted import write_learning_archive

        return write_learning_archive(args.learning_archive, contacts=args.contacts,
                                      seed=args.seed)  # fmt: skip
    if args.command == "demo":
        from streams.commands.demo import run_demo
        from streams.errors import LeadscoreError
        from streams.settings import load_settings

        try:
            settings = load_settings()
        except LeadscoreError as exc:
            print(f"leadscore demo: {exc}", file=sys.stderr)
            return 2
        return run_demo(
            settings,
            events=args.events,
            rate=args.rate,
            contacts=args.contacts,
            deals=args.deals,
            seed=args.seed,
        )
    if args.command == "automate":
        from streams.commands.automate import cmd_automate, cmd_automate_check

        if args.check:
            return cmd_automate_check(args.file)
        return cmd_automate(args.file, port=args.port, idle_exit_s=args.idle_exit)
    if args.command == "watch":
        from streams.commands.watch import cmd_watch

        return cmd_watch(args)
    if args.command == "replay":
        from streams.commands.replay import cmd_replay

        return cmd_replay(args)
    if args.command == "calibrate":
        from streams.commands.calibrate import cmd_calibrate

        return cmd_calibrate(args)
    if args.command == "learn":
        from streams.commands.learn import cmd_learn

        return cmd_learn(args)
    if args.command == "history":
        from streams.commands.history import cmd_history

        return cmd_history(args)
    if args.command == "top":
        from streams.api.topview import cmd_top

        return cmd_top(args)
    if args.command == "worker":
        from streams.commands.worker import run_worker

        return run_worker()
    raise AssertionError(f"unhandled command {args.command!r}")  # argparse guarantees one


def _offline(args: argparse.Namespace) -> int:
    """``plan check`` and ``score``: their output may go to a pipe that closes early
    (``| head``), which ends them quietly like any Unix filter, not with a traceback."""
    from streams.commands.offline import cmd_plan_check, cmd_score

    try:
        if args.command == "plan":
            return cmd_plan_check(args.file)
        return cmd_score(args.plan, args.events, changes=args.changes, until=args.until,
                         now=args.now)  # fmt: skip
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # (Python flushes stdout again at exit)
        return 0


if __name__ == "__main__":
    sys.exit(main())
