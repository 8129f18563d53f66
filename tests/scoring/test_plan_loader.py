"""Plan validation: every mistake is reported with file, score, rule and field, all at once."""

from __future__ import annotations

import textwrap

import pytest
from scoring_helpers import make_plan

from streams.scoring import PlanError
from streams.scoring.aggregate import tier_of

BASE = """
scores:
  - name: engagement
    entity: contact
    rules:
{rules}
"""


def errors(text: str) -> list[str]:
    with pytest.raises(PlanError) as caught:
        make_plan(text, source="plans/x.yaml")
    return [str(issue) for issue in caught.value.issues]


def rule_errors(rules: str) -> list[str]:
    return errors(BASE.format(rules=textwrap.indent(textwrap.dedent(rules).strip(), " " * 6)))


P = "plans/x.yaml: score 'engagement', rule 'r', "


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        # a negative cap
        (
            "- {id: r, on: page_visit, points: 1, cap: {max: -1, per: 1d}}",
            [P + "field 'cap.max': must be a positive integer of at most 10,000 (got -1)"],
        ),
        # a bad duration
        (
            "- {id: r, on: page_visit, points: 1, expires_after: 30 days}",
            [
                P + "field 'expires_after': must be a duration such as 500ms, 90s, 15m, 24h, 30d "
                "or 2w, from 1ms to 36500d (got '30 days')"
            ],
        ),
        # an unknown event type
        (
            "- {id: r, on: page_view, points: 1}",
            [
                P + "field 'on': unknown event type 'page_view' (known: page_visit, email.sent, "
                "email.open, email.click, email.reply, email.forward, email.bounce, "
                "email.unsubscribe, email.complaint, purchase, deal.stage_changed, "
                "contact.updated)"
            ],
        ),
        # an unknown field of a rule
        (
            "- {id: r, on: page_visit, points: 1, expires: 1d}",
            [
                P + "field 'expires': unknown field (expected one of: id, description, on, where, "
                "while, points, category, repeat, cap, expires_after, decay)"
            ],
        ),
        # a bad regex
        (
            "- {id: r, on: page_visit, points: 1, where: {url: {regex: '(unclosed'}}}",
            [
                P + "field 'where.url.regex': is not a valid regular expression: missing ) at "
                "'(unclosed' (got '(unclosed')"
            ],
        ),
        # a backreference: RE2 (linear time) has none; (a+)+$ is fine on RE2 and accepted
        (
            "- {id: r, on: page_visit, points: 1, where: {url: {regex: '(a)\\1'}}}",
            [
                P + "field 'where.url.regex': uses a backreference (\\1), which plan regexes "
                "do not support: they run on RE2, which guarantees matching in linear time and "
                "so never backtracks (got '(a)\\1')"
            ],
        ),
        # an undeclared category
        (
            "- {id: r, on: page_visit, points: 1, category: fit}",
            [
                P + "field 'category': category 'fit' is not declared in the score's 'categories' "
                "(none declared)"
            ],
        ),
        # a field that the event type does not have
        (
            "- {id: r, on: page_visit, points: 1, where: {amount: {gt: 5}}}",
            [
                P + "field 'where.amount': unknown field 'amount' (known: referrer, session_id, "
                "title, url)"
            ],
        ),
        # an unknown operator
        (
            "- {id: r, on: page_visit, points: 1, where: {url: {like: x}}}",
            [
                P + "field 'where.url.like': unknown operator (known: eq, ne, in, not_in, gt, gte, "
                "lt, lte, contains, starts_with, glob, regex, exists)"
            ],
        ),
        # a state rule with on
        (
            "- {id: r, on: page_visit, while: {attributes.x: {eq: 1}}, points: 1}",
            [
                P + "field 'on': a rule needs exactly one of 'on' (event rule) or 'while' "
                "(state rule)"
            ],
        ),
        # a rule with neither
        (
            "- {id: r, points: 1}",
            [
                P + "field 'on': a rule needs exactly one of 'on' (event rule) or 'while' "
                "(state rule)"
            ],
        ),
        # repeat/cap/expiry on a state rule
        (
            "- {id: r, while: {attributes.x: {eq: 1}}, points: 1, repeat: once, expires_after: 1d}",
            [
                P + "field 'repeat': is not allowed on a state ('while') rule",
                P + "field 'expires_after': is not allowed on a state ('while') rule",
            ],
        ),
        # a while path the contact entity does not have
        (
            "- {id: r, while: {stage: {eq: won}}, points: 1}",
            [P + "field 'while.stage': unknown field 'stage' (known: attributes)"],
        ),
        # points must be an integer
        (
            "- {id: r, on: page_visit, points: 1.5}",
            [
                P + "field 'points': must be an integer from -1,000,000,000 to 1,000,000,000, or a "
                "mapping {field, multiply, add, min, max} (got 1.5)"
            ],
        ),
        # the reserved adjustment prefix
        (
            "- {id: adjustment-x, on: page_visit, points: 1}",
            [
                "plans/x.yaml: score 'engagement', rule 'adjustment-x', field 'id': ids starting "
                "with 'adjustment' are reserved for manual adjustments"
            ],
        ),
    ],
)
def test_rule_mistakes(rules: str, expected: list[str]) -> None:
    assert rule_errors(rules) == expected


def test_duplicate_rule_ids_and_scores() -> None:
    text = """
    scores:
      - name: a
        entity: contact
        rules:
          - {id: r, on: page_visit, points: 1}
          - {id: r, on: page_visit, points: 2}
      - name: a
        entity: deal
    """
    assert errors(text) == [
        "plans/x.yaml: score 'a', rule 'r', field 'id': duplicate rule id in this score",
        "plans/x.yaml: score 'a', field 'name': duplicate score name",
    ]


def test_all_mistakes_at_once() -> None:
    text = """
    lateness: soon
    scores:
      - name: s
        entity: person
        timezone: Mars/Olympus
        limits: {min: 10, max: 5}
        quiet_hours:
          policy: later
          windows: [{days: [mon, funday], from: "25:00", to: "07:00"},
                    {from: "07:00", to: "07:00"}]
        thresholds: [{name: a, at: 1}, {name: a, at: 2}, {name: b, at: 1}]
        rules:
          - {id: r, on: page_visit, points: 1, cap: {max: 0, per: 1x}}
    """
    assert errors(text) == [
        "plans/x.yaml: field 'lateness': must be a duration such as 500ms, 90s, 15m, 24h, 30d "
        "or 2w, from 1ms to 36500d (got 'soon')",
        "plans/x.yaml: score 's', field 'entity': must be one of contact, deal, account "
        "(got 'person')",
        "plans/x.yaml: score 's', field 'timezone': unknown IANA time zone 'Mars/Olympus' "
        "(e.g. UTC, Europe/Warsaw)",
        "plans/x.yaml: score 's', field 'quiet_hours.policy': must be one of skip, defer "
        "(got 'later')",
        "plans/x.yaml: score 's', field 'quiet_hours.windows[0].days': unknown day 'funday' "
        "(use mon, tue, wed, thu, fri, sat, sun)",
        "plans/x.yaml: score 's', field 'quiet_hours.windows[0].from': must be a time HH:MM "
        "between 00:00 and 23:59, quoted or not (got '25:00')",
        "plans/x.yaml: score 's', field 'quiet_hours.windows[1].to': must differ from 'from' "
        "(both 07:00); a window from a time to the same time is empty or the whole day",
        "plans/x.yaml: score 's', field 'limits.min': must not exceed limits.max (10 > 5)",
        "plans/x.yaml: score 's', field 'thresholds[1].name': threshold name 'a' is used twice",
        "plans/x.yaml: score 's', field 'thresholds[2].at': two thresholds are at 1",
        "plans/x.yaml: score 's', rule 'r', field 'cap.max': must be a positive integer of at "
        "most 10,000 (got 0)",
        "plans/x.yaml: score 's', rule 'r', field 'cap.per': must be a duration such as 500ms, "
        "90s, 15m, 24h, 30d or 2w, from 1ms to 36500d (got '1x')",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # not YAML at all
        (
            "scores: [",
            "plans/x.yaml: not valid YAML: while parsing a flow node expected the "
            "node content, but found '<stream end>' in \"plans/x.yaml\", line 1, "
            "column 10: scores: [ ^",
        ),
        # aliases are refused
        (
            "a: &x 1\nscores: *x",
            "plans/x.yaml: not valid YAML: aliases (*name) are not "
            'allowed in plans in "plans/x.yaml", line 2, column 9: '
            "scores: *x ^",
        ),
        # duplicate keys are not silently overwritten
        ("scores: []\nscores: []", "plans/x.yaml: line 2: duplicate key 'scores'"),
        # a rule's `on` written back by a YAML 1.1 tool becomes the boolean key `true`
        (
            "scores:\n- name: s\n  entity: contact\n  rules:\n  - id: r\n    true: page_visit\n"
            "    points: 1\n",
            "plans/x.yaml: line 6: key true is read as a boolean, not as text: a YAML 1.1 tool "
            "writes the rule field 'on' as 'true'; write on: (or quote the key)",
        ),
        # any other key that is not text
        (
            "1: 2\nscores: []",
            "plans/x.yaml: line 1: key 1 is not text; field names are text (quote the key)",
        ),
        # a list instead of a mapping
        (
            "- 1",
            "plans/x.yaml: must be a mapping (got [1]); the plan has: version, "
            "description, lateness, dedup_horizon, max_future, scores, matrices",
        ),
        # scores must not be empty
        ("scores: []", "plans/x.yaml: field 'scores': must be a non-empty list of scores"),
        # dedup horizon shorter than lateness
        (
            "lateness: 2d\ndedup_horizon: 1d\nscores: [{name: s, entity: contact}]",
            "plans/x.yaml: field 'dedup_horizon': must be at least 'lateness' (otherwise an event "
            "could be forgotten as seen before it becomes too late)",
        ),
    ],
)
def test_document_mistakes(text: str, expected: str) -> None:
    assert errors(text)[0] == expected


def test_plan_error_str_lists_one_issue_per_line() -> None:
    with pytest.raises(PlanError) as caught:
        make_plan("scores: []\nextra: 1", source="p.yaml")
    assert str(caught.value) == (
        "p.yaml: field 'extra': unknown field (expected one of: version, description, "
        "lateness, dedup_horizon, max_future, scores, matrices)\n"
        "p.yaml: field 'scores': must be a non-empty list of scores"
    )


def test_yaml_1_1_traps_are_text() -> None:
    plan = make_plan(
        """
        scores:
          - name: s
            entity: contact
            quiet_hours: {policy: skip, windows: [{from: 22:00, to: 07:00}]}
            rules: [{id: r, on: page_visit, points: 1, where: {title: {eq: no}}}]
        """
    )
    score = plan.scores[0]
    assert score.rules[0].on == ("page_visit",)
    assert score.quiet_hours is not None
    assert (score.quiet_hours.windows[0].start_min, score.quiet_hours.windows[0].end_min) == (
        22 * 60,
        7 * 60,
    )
    assert score.rules[0].where is not None and score.rules[0].where({"title": "no"})


def test_version_is_a_stable_content_hash_or_explicit() -> None:
    text = "scores: [{name: s, entity: contact}]"
    a = make_plan(text)
    b = make_plan("# a comment\nscores:\n  - {entity: contact, name: s}\n")
    assert a.version == b.version and len(a.version) == 12
    assert make_plan("version: '2024-05'\n" + text).version == "2024-05"


def test_defaults() -> None:
    plan = make_plan("scores: [{name: s, entity: deal}]")
    assert (plan.lateness_ms, plan.dedup_horizon_ms) == (7 * 86_400_000, 7 * 86_400_000)
    assert plan.scores[0].timezone == "UTC"
    assert plan.by_kind == {"contact": (), "deal": plan.scores, "account": ()}


def tier_errors(tiers: str) -> list[str]:
    return errors(f"""
        scores:
          - name: s
            entity: contact
            tiers: {tiers}
            rules: [{{id: r, on: page_visit, points: 1}}]
    """)


@pytest.mark.parametrize(
    ("tiers", "expected"),
    [
        ("[{name: only}]", ["tiers: must be a list of at least two {name, below}, the last "
                            "without below"]),
        ("{cold: 50}", ["tiers: must be a list of at least two {name, below}, the last without "
                        "below"]),
        ("[{name: cold}, {name: hot}]", ["tiers[0].below: required for every tier but the last"]),
        ("[{name: cold, below: 5}, {name: hot, below: 9}]",
         ["tiers[1].below: the last tier has no upper bound: remove below"]),
        ("[{name: a, below: 50}, {name: b, below: 50}, {name: c}]",
         ["tiers[1].below: must be above the previous tier's (50)"]),
        ("[{name: a, below: 50}, {name: a}]", ["tiers[1].name: tier name 'a' is used twice"]),
        ("[{name: a, below: x}, {name: b}]",
         ["tiers[0].below: must be an integer from -1,000,000,000,000 to 1,000,000,000,000 "
              "(got 'x')"]),
        ("[{name: a, below: 1, at: 2}, {name: b}]",
         ["tiers[0].at: unknown field (expected one of: name, below)"]),
    ],
)  # fmt: skip
def test_tier_mistakes(tiers: str, expected: list[str]) -> None:
    prefix = "plans/x.yaml: score 's', field "
    got = [e.removeprefix(prefix) for e in tier_errors(tiers)]
    assert [g.replace("'", "", 2) if g.startswith("'") else g for g in got] == expected


def test_tiers_load_in_order() -> None:
    plan = make_plan("""
        scores:
          - name: s
            entity: contact
            tiers: [{name: cold, below: 50}, {name: warm, below: 100}, {name: hot}]
            rules: [{id: r, on: page_visit, points: 1}]
    """)
    (score,) = plan.scores
    assert [(t.name, t.below) for t in score.tiers] == [("cold", 50), ("warm", 100), ("hot", None)]
    assert [tier_of(score, v) for v in (-5, 49, 50, 99, 100, 10**9)] == [
        "cold", "cold", "warm", "warm", "hot", "hot"
    ]  # fmt: skip
