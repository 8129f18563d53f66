"""The Grafana dashboard ``deploy/grafana/leadscore.json``: written by ``tools/dashboard.py``,
linted by the rules of Grafana's dashboard-linter, every query valid PromQL (``promtool``) over
metrics the worker exports, and every panel the runbooks name is on it.

dashboard-linter itself cannot be installed here: the Go module proxy refuses
``github.com/grafana/dashboard-linter`` (403 for ``@latest`` and for its one release, v0.1.1), and
its current source needs ``github.com/grafana/grafana/apps/dashboard`` and
``github.com/grafana/loki/v3``, AGPL modules we do not build. Its Prometheus rules are small, so
they are checked below under their own names (``lint/rule_*.go`` of that repository); the PromQL
they parse is parsed by ``promtool`` instead.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.prometheus_tools import ROOT, exported_metrics, metrics_in, prometheus_tool
from tools import dashboard as source

DASHBOARD = json.loads(source.OUT.read_text(encoding="utf-8"))
PANELS = [p for p in DASHBOARD["panels"] if p["type"] != "row"]
VARIABLES = {v["name"]: v for v in DASHBOARD["templating"]["list"]}
DATASOURCE_UIDS = {"$datasource", "${datasource}"}
#: Grafana's unit ids, the ones a panel of ours may use (from valueFormats/categories.ts).
UNITS = {"short", "none", "percent", "percentunit", "s", "ms", "bytes", "ops", "reqps", "cps"}
#: Counters and histogram series: read only through rate() or increase() (target-counter-agg-rule).
COUNTER = re.compile(r"_(total|bucket|sum|count)$")


def exprs() -> list[tuple[str, str]]:
    return [(p["title"], t["expr"]) for p in PANELS for t in p["targets"]]


def test_the_file_is_what_the_script_writes() -> None:
    assert source.main(["dashboard.py", "--check"]) == 0
    assert len(PANELS) == len(source.panels()) >= 16


def test_template_datasource_rule() -> None:
    ds = [v for v in VARIABLES.values() if v["type"] == "datasource"]
    assert [(v["name"], v["label"], v["query"]) for v in ds] == [
        ("datasource", "Data source", "prometheus")
    ]


@pytest.mark.parametrize("name", ["job", "instance"])
def test_template_job_and_instance_rules(name: str) -> None:
    variable = VARIABLES[name]
    assert variable["datasource"]["uid"] in DATASOURCE_UIDS
    assert (variable["type"], variable["label"]) == ("query", name.title())
    assert variable["multi"] is True and variable["allValue"] == ".+"


def test_template_label_promql_and_reload_rules(promtool: str, tmp_path: Path) -> None:
    queries = [v for v in VARIABLES.values() if v["type"] == "query"]
    inner = []
    for variable in queries:
        assert variable["refresh"] == 2, variable["name"]  # template-on-time-change-reload-rule
        match = re.fullmatch(r"([a-z_]+)\((.+)\)", variable["query"])
        assert match and match[1] in {"label_names", "label_values", "metrics", "query_result"}
        inner.append(match[2].rsplit(",", 1)[0] if match[1] == "label_values" else match[2])
    check_promql(promtool, tmp_path, [source.resolve(e) for e in inner])


def test_uneditable_dashboard_rule() -> None:
    assert DASHBOARD["editable"] is False


@pytest.mark.parametrize("panel", PANELS, ids=lambda p: p["title"])
def test_panel_rules(panel: dict[str, object]) -> None:
    assert panel["datasource"]["uid"] in DATASOURCE_UIDS  # type: ignore[index]
    assert str(panel["title"]).strip() and len(str(panel["description"])) > 40
    assert panel["fieldConfig"]["defaults"]["unit"] in UNITS  # type: ignore[index]
    assert panel["targets"]  # panel-no-targets-rule
    for target in panel["targets"]:  # type: ignore[attr-defined]
        assert target["datasource"]["uid"] in DATASOURCE_UIDS


@pytest.mark.parametrize(("title", "expr"), exprs())
def test_target_rules(title: str, expr: str) -> None:
    selectors = re.findall(r"\b([a-z_:]+)\{([^}]*)\}", expr)
    assert {name for name, _ in selectors} == metrics_in(expr), "a metric without a selector"
    for _, labels in selectors:  # target-job-rule, target-instance-rule
        assert 'job=~"$job"' in labels and 'instance=~"$instance"' in labels
    assert set(re.findall(r"\[([^\]]*)\]", expr)) <= {"$__rate_interval"}  # rate-interval rule
    for name, _ in selectors:  # target-counter-agg-rule
        if COUNTER.search(name):
            assert re.search(rf"\b(rate|increase)\({name}\{{", expr), name


def test_every_query_reads_metrics_the_worker_exports() -> None:
    exported = exported_metrics()
    for title, expr in exprs():
        assert metrics_in(expr) and metrics_in(expr) <= exported, (title, expr)


def test_every_query_is_valid_promql(promtool: str, tmp_path: Path) -> None:
    check_promql(promtool, tmp_path, [source.resolve(expr) for _, expr in exprs()])


def test_the_runbooks_name_panels_that_exist() -> None:
    """Each alert's runbook says which panels to look at, by their titles in quotes."""
    operations = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    section = operations.split("\n## Alerts and runbooks\n", 1)[1].split("\n## ", 1)[0]
    titles = {p["title"] for p in PANELS}
    runbooks = section.split("\n### ")[1:]
    assert len(runbooks) >= 7
    for runbook in runbooks:
        line = re.search(r"^\*\*Dashboard\*\*: (.+)$", runbook, re.MULTILINE)
        assert line, runbook.splitlines()[0]
        quoted = set(re.findall(r'"([^"]+)"', line[1]))
        assert quoted and quoted <= titles, (runbook.splitlines()[0], quoted - titles)


def check_promql(promtool: str, tmp_path: Path, expressions: list[str]) -> None:
    """promtool parses every expression (as a recording rule); it fails on any syntax error."""
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{n}", "expr": expr} for n, expr in enumerate(expressions)
    ]}]}  # fmt: skip
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump(rules))
    done = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(expressions)} rules found" in done.stdout


@pytest.fixture(scope="module")
def promtool() -> str:
    return prometheus_tool("promtool")
