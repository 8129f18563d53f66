"""The container image and the compose stack (``Dockerfile``, ``.dockerignore``,
``docker-compose.yml``, ``docker-compose.local.yml``, ``deploy/compose/``), checked without running
a container: the compose files against the Compose specification's JSON schema (vendored in
``deploy/schemas/``), every ``LEADSCORE_*`` variable by the real settings loader, every command by
the real CLI parser, the image's install steps against the Makefile's, its healthcheck command
against an HTTP server, the local broker image's entrypoint with the compose file's settings, and
the Prometheus config with ``promtool``. ``tests/deploy/test_containers.py`` builds the
images and runs the stack."""

from __future__ import annotations

import fnmatch
import hashlib
import http.server
import json
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.cli import _build_parser
from tests.deploy.deploy_helpers import (
    ALL_INTERFACES,
    ROOT,
    dockerfile,
    image_env,
    load_with_env,
    setting_names,
)

COMPOSE = ROOT / "docker-compose.yml"
LOCAL = ROOT / "docker-compose.local.yml"
SCHEMAS = ROOT / "deploy" / "schemas"
COMPOSE_SCHEMA = SCHEMAS / "compose-spec.json"
PROMETHEUS = ROOT / "deploy" / "compose" / "prometheus.yml"
GRAFANA = ROOT / "deploy" / "compose" / "grafana" / "provisioning"
IMAGE = "leadscore:local"
#: ${VAR:-default} / ${VAR-default}; compose interpolation as used in docker-compose.yml
INTERPOLATION = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def check_jsonschema() -> str:
    tool = Path(sys.executable).parent / "check-jsonschema"
    if not tool.exists():
        pytest.fail("check-jsonschema is not installed: make venv installs it (dev extra)")
    return str(tool)


def interpolate(value: str) -> str:
    """Compose interpolation with an empty environment: each variable's default."""
    for name, default in INTERPOLATION.findall(value):
        assert default, f"${{{name}}} has no default: the stack would need it set"
    return INTERPOLATION.sub(lambda m: m.group(2), value)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())  # merges the x- anchors
    return loaded


def leadscore_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in compose["services"].items() if s.get("image") == IMAGE}


def workers(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in leadscore_services(compose).items() if s["command"] == ["worker"]}


def service_env(service: dict[str, Any]) -> dict[str, str]:
    """What the container sees: the image's LEADSCORE_* ENV, then the service's environment (a
    key without a value is taken from the shell running compose: unset here)."""
    env = {k: v for k, v in image_env().items() if k.startswith("LEADSCORE_")}
    for key, value in (service.get("environment") or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = interpolate(str(value))
    return env


def parse_cli(argv: list[str]) -> Any:
    try:
        return _build_parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"leadscore {shlex.join(argv)}: rejected by the CLI parser")


# ----- the compose file ---------------------------------------------------------------------------


def test_the_compose_file_matches_the_compose_specification() -> None:
    done = subprocess.run([check_jsonschema(), "--schemafile", str(COMPOSE_SCHEMA), str(COMPOSE)],
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok -- validation done" in done.stdout


def test_the_schema_check_catches_a_misspelt_key(tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE.read_text().replace("    environment:\n", "    enviroment:\n", 1))
    done = subprocess.run([check_jsonschema(), "--schemafile", str(COMPOSE_SCHEMA), str(broken)],
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "enviroment" in done.stdout + done.stderr


def test_the_vendored_schemas_are_the_ones_their_note_names() -> None:
    note = (SCHEMAS / "README.md").read_text()
    vendored = sorted(p for p in SCHEMAS.iterdir() if p.name != "README.md")
    assert {p.name for p in vendored} == {
        "compose-spec.json",
        "monitoring.coreos.com_prometheusrules.yaml",
        "monitoring.coreos.com_servicemonitors.yaml",
    }
    for path in vendored:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert f"`{path.name}`" in note and digest in note, (path.name, digest)


def test_the_stack_has_its_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["kafka"]["image"].startswith("apache/kafka:4.")
    assert services["prometheus"]["image"].startswith("prom/prometheus:v3.")
    assert services["grafana"]["image"].startswith("grafana/grafana:")
    assert sorted(workers(compose)) == ["leadscore-1", "leadscore-2"]
    assert sorted(leadscore_services(compose)) == ["demo", "leadscore-1", "leadscore-2"]
    for name, service in leadscore_services(compose).items():
        assert service["build"] == {"context": ".", "dockerfile": "Dockerfile"}, name


def test_every_leadscore_variable_is_a_setting(compose: dict[str, Any]) -> None:
    known = setting_names()
    names = set(image_env()) | {
        key for s in leadscore_services(compose).values() for key in s.get("environment", {})
    }
    leadscore = {n for n in names if n.startswith("LEADSCORE_")}
    assert leadscore, "no LEADSCORE_* variable found"
    assert leadscore <= known, sorted(leadscore - known)


@pytest.mark.parametrize("name", ["leadscore-1", "leadscore-2", "demo"])
def test_each_container_environment_loads(
    compose: dict[str, Any], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = service_env(compose["services"][name])
    settings = load_with_env(monkeypatch, env)
    assert settings.bootstrap_servers == "kafka:9092"
    assert settings.replication_factor == 1
    # the API token comes from the shell running compose: set there, it must load too
    load_with_env(monkeypatch, {**env, "LEADSCORE_API_TOKEN": "a-token-from-the-shell"})


def test_workers_have_identities_of_their_own(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen_ids, seen_volumes, seen_ports = set(), set(), set()
    for name, service in workers(compose).items():
        settings = load_with_env(monkeypatch, service_env(service))
        assert settings.web_host == ALL_INTERFACES, name
        # other workers forward API requests to http://<service name>:<port>
        assert settings.web_advertised_host == name == service["hostname"]
        assert settings.instance_id and settings.instance_id not in seen_ids
        seen_ids.add(settings.instance_id)
        data = [v for v in service["volumes"] if v.endswith(f":{settings.data_dir}")]
        assert len(data) == 1, (name, service["volumes"])
        volume = data[0].split(":")[0]
        assert volume in compose["volumes"] and volume not in seen_volumes
        seen_volumes.add(volume)
        (port,) = service["ports"]
        assert port.endswith(f":{settings.web_port}")
        seen_ports.add(interpolate(port).split(":")[-2])
        # the plan is the repository's, mounted read-only where LEADSCORE_PLAN_PATH points
        mounts = {v.split(":")[1]: v.split(":")[0] for v in service["volumes"]}
        source = mounts[str(settings.plan_path.parent)]
        assert (ROOT / source / settings.plan_path.name).is_file()
        assert service["depends_on"]["kafka"]["condition"] == "service_healthy"
        assert service["stop_grace_period"] == "75s"
    assert seen_ports == {"6066", "6067"}


def test_the_broker_listener_is_the_workers_bootstrap(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]["environment"]
    advertised = dict(item.split("://") for item in kafka["KAFKA_ADVERTISED_LISTENERS"].split(","))
    for name, service in leadscore_services(compose).items():
        assert service_env(service)["LEADSCORE_BOOTSTRAP_SERVERS"] == advertised["PLAINTEXT"], name
    # the worker's transactions and exactly-once need these on a single node
    assert kafka["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "1"
    assert kafka["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "1"
    assert kafka["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    assert kafka["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"  # as deploy/kafka/kafka.sh
    assert "kafka-broker-api-versions.sh" in compose["services"]["kafka"]["healthcheck"]["test"][1]


def test_every_command_is_a_real_cli_invocation(compose: dict[str, Any]) -> None:
    commands = {name: [interpolate(a) for a in s["command"]]
                for name, s in leadscore_services(compose).items()}  # fmt: skip
    for name, argv in commands.items():
        assert parse_cli(argv).command in {"worker", "demo"}, name
    # the image's own entry point and default command
    ops = {i.op: json.loads(i.args) for i in dockerfile() if i.op in ("ENTRYPOINT", "CMD")}
    assert ops["ENTRYPOINT"] == ["leadscore"]
    assert parse_cli(ops["CMD"]).command == "worker"
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'leadscore = "streams.cli:main"' in pyproject


def test_the_demo_traffic_is_make_runs(compose: dict[str, Any]) -> None:
    """Same options and defaults as ``deploy/run.sh`` (``make run``)."""
    run_sh = (ROOT / "deploy" / "run.sh").read_text()
    line = re.search(r"leadscore demo (.*?)\s*\\\n(.*?)\n", run_sh)
    assert line, "deploy/run.sh no longer runs leadscore demo"
    theirs = shlex.split(re.sub(r'"\$\{(\w+):-([^}]*)\}"', r"\2", line[1] + " " + line[2]))
    theirs = [a for a in theirs if a not in (">", "2>&1", "&", "var/demo.log")]
    ours = [interpolate(a) for a in compose["services"]["demo"]["command"]]
    assert vars(parse_cli(ours)) == vars(parse_cli(["demo", *theirs]))
    demo = compose["services"]["demo"]
    assert demo["restart"] == "no" and demo["healthcheck"] == {"disable": True}
    for worker in workers(compose):
        assert demo["depends_on"][worker]["condition"] == "service_healthy"


def test_every_bind_mount_source_exists(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name}: {source} is missing"


def test_host_ports_move_with_a_variable_and_keep_their_defaults(compose: dict[str, Any]) -> None:
    """Each published port is 127.0.0.1:${VARIABLE:-default}:container port, so a second stack
    (the container test's) can take free ports; the defaults are the documented ones."""
    expected = {
        "kafka": ("KAFKA_HOST_PORT", "39092"),
        "leadscore-1": ("WORKER_1_PORT", "6066"),
        "leadscore-2": ("WORKER_2_PORT", "6067"),
        "prometheus": ("PROMETHEUS_PORT", "9090"),
        "grafana": ("GRAFANA_PORT", "3000"),
    }
    published = {n: s["ports"] for n, s in compose["services"].items() if s.get("ports")}
    assert set(published) == set(expected)
    for name, (variable, default) in expected.items():
        (port,) = published[name]
        assert port.startswith(f"127.0.0.1:${{{variable}:-{default}}}:"), (name, port)
    # the broker tells host clients the port they connected to
    listeners = compose["services"]["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert "HOST://127.0.0.1:${KAFKA_HOST_PORT:-39092}" in listeners.split(",")
    for name in published:
        assert not name.startswith("LEADSCORE_")  # (a LEADSCORE_* would be read as a setting)


def test_leadscore_containers_are_locked_down_as_the_pods(compose: dict[str, Any]) -> None:
    """Read-only root, scratch space on /tmp only, no capabilities, no privilege escalation: the
    Kubernetes StatefulSet's securityContext (tests/deploy/test_containers.py runs it)."""
    pod = yaml.safe_load((ROOT / "deploy" / "k8s" / "base" / "statefulset.yaml").read_text())
    (container,) = pod["spec"]["template"]["spec"]["containers"]
    context = container["securityContext"]
    assert context["readOnlyRootFilesystem"] is True and context["capabilities"]["drop"] == ["ALL"]
    assert context["allowPrivilegeEscalation"] is False
    for name, service in leadscore_services(compose).items():
        assert service["read_only"] is True, name
        assert service["tmpfs"] == ["/tmp"], name
        assert service["cap_drop"] == ["ALL"], name
        assert service["security_opt"] == ["no-new-privileges:true"], name


# ----- the local images' override (docker-compose.local.yml) ----------------------------------


@pytest.fixture(scope="module")
def local() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(LOCAL.read_text())
    return loaded


def test_the_override_matches_the_compose_specification() -> None:
    done = subprocess.run([check_jsonschema(), "--schemafile", str(COMPOSE_SCHEMA), str(LOCAL)],
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_override_changes_images_only(compose: dict[str, Any], local: dict[str, Any]) -> None:
    """Same services, settings and volumes as docker-compose.yml: the override names the local
    images of the broker and Prometheus and puts Grafana (no local image) behind a profile."""
    assert set(local) == {"services"}
    assert set(local["services"]) <= set(compose["services"])
    assert local["services"] == {
        "kafka": {"image": "localhost/leadscore-kafka:local"},
        "prometheus": {"image": "localhost/leadscore-prometheus:local"},
        "grafana": {"profiles": ["grafana"]},
    }
    # the images are the ones deploy/containers/images.sh tags
    images_sh = (ROOT / "deploy" / "containers" / "images.sh").read_text()
    for service in ("kafka", "prometheus"):
        tag = local["services"][service]["image"].removeprefix("localhost/")
        assert f"-t {tag} " in images_sh, tag
    # the worker image is the compose file's own
    assert all(s["image"] == IMAGE for s in leadscore_services(compose).values())


def test_the_local_broker_image_answers_the_compose_healthcheck() -> None:
    """The compose healthcheck runs /opt/kafka/bin/kafka-broker-api-versions.sh; the local image
    installs the project's own probe there, and reads the broker's settings as apache/kafka."""
    containerfile = (ROOT / "deploy" / "containers" / "kafka" / "Containerfile").read_text()
    assert "COPY entrypoint.sh kafka-broker-api-versions.sh /opt/kafka/bin/" in containerfile
    probe = ROOT / "deploy" / "containers" / "kafka" / "kafka-broker-api-versions.sh"
    assert probe.stat().st_mode & 0o111
    # nothing listening: the probe fails (the integration test runs it against the broker)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    done = subprocess.run([str(probe), "--bootstrap-server", f"127.0.0.1:{port}"],
                          capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
    assert done.returncode != 0


def test_the_broker_entrypoint_maps_settings_as_apache_kafka(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    """The entrypoint's KAFKA_* -> server.properties mapping, run with the compose file's
    environment (a stand-in java records what it is asked to run)."""
    entrypoint = (ROOT / "deploy" / "containers" / "kafka" / "entrypoint.sh").read_text()
    config = tmp_path / "server.properties"
    script = tmp_path / "entrypoint.sh"
    script.write_text(entrypoint.replace("/opt/kafka/config/server.properties", str(config)))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "java").write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/java.log\n')
    (bin_dir / "java").chmod(0o755)
    env = {k: str(v) for k, v in compose["services"]["kafka"]["environment"].items()}
    env = {k: interpolate(v) for k, v in env.items()}
    env["KAFKA_LOG_DIRS"] = str(tmp_path / "data")
    done = subprocess.run(["bash", str(script)], env={"PATH": f"{bin_dir}:/usr/bin:/bin", **env},
                          capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    written = dict(
        line.split("=", 1) for line in config.read_text().splitlines() if not line.startswith("#")
    )
    assert written["process.roles"] == "broker,controller"
    assert written["controller.quorum.voters"] == "1@kafka:9093"
    assert written["advertised.listeners"] == "PLAINTEXT://kafka:9092,HOST://127.0.0.1:39092"
    assert written["transaction.state.log.min.isr"] == "1"
    assert written["log.dirs"] == str(tmp_path / "data")
    assert "heap.opts" not in written and "KAFKA_HEAP_OPTS" in env
    assert len(written) == len([k for k in env if k.startswith("KAFKA_")]) - 1  # all but the heap
    calls = (tmp_path / "java.log").read_text().splitlines()
    # first the storage is formatted with the compose file's cluster id, then the broker runs
    assert "kafka.tools.StorageTool format -t bGVhZHNjb3JlLWRlbW8tMQ" in calls[0]
    assert calls[1].startswith("-Xms256m -Xmx768m ") and calls[1].endswith(f"kafka.Kafka {config}")


# ----- the image -----------------------------------------------------------------------------


def makefile_install_lines() -> list[str]:
    """The pip lines of the Makefile's $(STAMP) recipe, with make's variables expanded."""
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^\$\(STAMP\):.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert recipe, "the Makefile has no $(STAMP) recipe"
    lines = [line.strip().lstrip("@") for line in recipe[1].splitlines()]
    pip = [line.replace("$(PY)", ".venv/bin/python") for line in lines if " pip install " in line]
    assert len(pip) == 2, lines
    return pip


def run_commands(stage: str) -> list[str]:
    return [part.strip() for i in dockerfile() if i.stage == stage and i.op == "RUN"
            for part in i.args.split("&&")]  # fmt: skip


def test_the_build_stage_installs_exactly_as_make_does() -> None:
    steps = run_commands("build")
    make = makefile_install_lines()
    assert "python -m venv .venv" in steps  # make: $(PYTHON) -m venv $(VENV)
    for line in make:
        assert line in steps, f"the Makefile runs {line!r}; the Dockerfile does not"
    assert steps.index("python -m venv .venv") < steps.index(make[0]) < steps.index(make[1])
    # and the core is compiled as `make venv` does, strictly
    assert "LEADSCORE_CORE_BUILD_STRICT=1 .venv/bin/python tools/build_core.py" in steps
    assert "LEADSCORE_CORE=compiled .venv/bin/leadscore --version" in steps


def test_the_runtime_venv_has_the_same_pins_without_the_dev_extra() -> None:
    steps = run_commands("build")
    for line in makefile_install_lines():
        runtime = line.replace(".venv/bin/python", "/opt/leadscore/bin/python")
        assert runtime.replace('-e ".[dev]"', "-e .") in steps
    copies = [i.args for i in dockerfile() if i.stage == "runtime" and i.op == "COPY"]
    assert "--from=build /opt/leadscore /opt/leadscore" in copies
    assert "--from=build /app/streams /app/streams" in copies  # with the compiled core
    assert {"schemas/ /app/schemas/", "plans/ /app/plans/"} <= set(copies)


def test_both_stages_use_one_python() -> None:
    froms = [i.args for i in dockerfile() if i.op == "FROM"]
    assert froms == ["${PYTHON_IMAGE} AS build", "${PYTHON_IMAGE} AS runtime"]
    arg = next(i.args for i in dockerfile() if i.op == "ARG")
    assert re.fullmatch(r"PYTHON_IMAGE=python:3\.1[1-9]-slim-\w+", arg), arg


def test_the_image_runs_as_a_non_root_user_serving_on_all_interfaces() -> None:
    user = [i.args for i in dockerfile() if i.stage == "runtime" and i.op == "USER"]
    assert user == ["10001:10001"]
    env = image_env()
    assert env["LEADSCORE_WEB_HOST"] == ALL_INTERFACES
    assert env["PATH"].startswith("/opt/leadscore/bin:")
    assert env["LEADSCORE_PLAN_PATH"] == "/app/plans/reference.yaml"
    assert (ROOT / "plans" / "reference.yaml").is_file()
    # the compiled core or no start: a broken image must not run at half speed
    assert env["LEADSCORE_CORE"] == "compiled"


def test_the_build_context_holds_what_the_dockerfile_copies() -> None:
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]  # fmt: skip
    sources = [arg for i in dockerfile() if i.op == "COPY" and not i.args.startswith("--from")
               for arg in i.args.split()[:-1]]  # fmt: skip
    assert sources
    for source in sources:
        path = source.rstrip("/")
        assert (ROOT / path).exists(), source
        ignored = [p for p in patterns if fnmatch.fnmatch(path, p.rstrip("/"))]
        assert not ignored, (source, ignored)
    for excluded in (".venv", ".cache", ".git", "var", "streams/scoring/*.so"):
        assert excluded in patterns  # the host's venv and compiled core stay out


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass


@pytest.fixture
def health_server() -> Iterator[int]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_the_healthcheck_command_asks_healthz(health_server: int) -> None:
    (check,) = [i.args for i in dockerfile() if i.op == "HEALTHCHECK"]
    argv = json.loads(check.split(" CMD ", 1)[1])
    assert argv[0] == "python"  # the venv's, first on PATH in the image
    argv[0] = sys.executable
    ok = subprocess.run(argv, env={"LEADSCORE_WEB_PORT": str(health_server)},
                        capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    # a 404 (another path) or nothing listening fails the check
    wrong = [a.replace("/healthz", "/nowhere") for a in argv]
    bad = subprocess.run(wrong, env={"LEADSCORE_WEB_PORT": str(health_server)},
                         capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
    assert bad.returncode != 0
    assert "--start-period=60s" in check


# ----- Prometheus and Grafana ----------------------------------------------------------------


@pytest.fixture(scope="module")
def promtool() -> str:
    found = subprocess.run([str(ROOT / "deploy" / "prometheus" / "promtool.sh")],
                           capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    if found.returncode != 0:
        pytest.fail(found.stderr.strip(), pytrace=False)
    return found.stdout.strip()


def mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> repository path of a service's bind mounts."""
    out = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            out[target] = ROOT / source
    return out


def test_prometheus_config_passes_promtool_with_the_alert_rules(
    compose: dict[str, Any], promtool: str, tmp_path: Path
) -> None:
    """The config and the rules it loads, laid out as the compose mounts place them."""
    service = compose["services"]["prometheus"]
    placed = mounts(service)
    assert placed["/etc/prometheus/prometheus.yml"] == PROMETHEUS
    assert placed["/etc/prometheus/alerts.yml"] == ROOT / "deploy" / "prometheus" / "alerts.yml"
    config = yaml.safe_load(PROMETHEUS.read_text())
    config["rule_files"] = [str(tmp_path / r.lstrip("/")) for r in config["rule_files"]]
    for target, source in placed.items():
        (tmp_path / target.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, tmp_path / target.lstrip("/"))
    checked = tmp_path / "prometheus.yml"
    checked.write_text(yaml.safe_dump(config))
    done = subprocess.run([promtool, "check", "config", str(checked)], capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())["groups"]
    count = sum(len(g["rules"]) for g in rules)
    assert f"SUCCESS: {count} rules found" in done.stdout + done.stderr
    assert "--config.file=/etc/prometheus/prometheus.yml" in service["command"]


def test_prometheus_scrapes_both_workers_as_job_leadscore(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "leadscore"]
    targets = {t for sc in job["static_configs"] for t in sc["targets"]}
    expected = set()
    for name, service in workers(compose).items():
        settings = load_with_env(monkeypatch, service_env(service))
        expected.add(f"{name}:{settings.web_port}")
    assert targets == expected
    assert job.get("metrics_path", "/metrics") == "/metrics"
    # the alert rules select that job
    assert 'up{job="leadscore"}' in (ROOT / "deploy" / "prometheus" / "alerts.yml").read_text()


def test_grafana_has_the_prometheus_datasource_and_the_dashboard(compose: dict[str, Any]) -> None:
    service = compose["services"]["grafana"]
    placed = mounts(service)
    assert placed["/etc/grafana/provisioning"] == GRAFANA
    (source,) = yaml.safe_load((GRAFANA / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    assert source["uid"] == "prometheus" and source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    assert any(p.endswith(":9090") for p in compose["services"]["prometheus"]["ports"])
    (provider,) = yaml.safe_load((GRAFANA / "dashboards" / "leadscore.yml").read_text())[
        "providers"
    ]
    dashboard_path = provider["options"]["path"] + "/leadscore.json"
    assert placed[dashboard_path] == ROOT / "deploy" / "grafana" / "leadscore.json"
    assert service["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"] == dashboard_path


def datasource_uids(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        ref = node.get("datasource")
        if isinstance(ref, dict) and "uid" in ref:
            yield str(ref["uid"])
        for value in node.values():
            yield from datasource_uids(value)
    elif isinstance(node, list):
        for value in node:
            yield from datasource_uids(value)


def test_the_dashboard_uses_the_provisioned_datasource() -> None:
    """Panels name the datasource by its uid, or through a datasource variable of type
    prometheus, which Grafana sets to the default datasource of that type: ours."""
    path = ROOT / "deploy" / "grafana" / "leadscore.json"
    assert path.is_file(), "deploy/grafana/leadscore.json (the dashboard) is missing"
    dashboard = json.loads(path.read_text())
    variables = {v["name"]: v for v in dashboard.get("templating", {}).get("list", [])}
    (source,) = yaml.safe_load((GRAFANA / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    uids = set(datasource_uids(dashboard))
    assert uids, "no panel names a datasource uid"
    for uid in uids - {"prometheus", "-- Grafana --", "grafana"}:
        name = re.fullmatch(r"\$\{?(\w+)\}?", uid)
        assert name and name[1] in variables, f"datasource uid {uid!r}: no such uid or variable"
        variable = variables[name[1]]
        assert variable["type"] == "datasource" and variable["query"] == source["type"], variable
        assert source["isDefault"] is True  # what the variable picks when nothing is chosen
