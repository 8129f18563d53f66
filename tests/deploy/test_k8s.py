"""The Kubernetes manifests (``deploy/k8s/``): the base and the small-cluster overlay rendered with
kustomize (``deploy/k8s/kustomize.sh`` finds it or builds it once with ``go install``), every
built-in resource validated strictly with kubernetes-validate against its newest Kubernetes
version, the Prometheus operator's resources against the vendored CRD schemas, and what the
workers need checked by the real settings loader and CLI parser."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from streams.cli import _build_parser
from streams.settings import Settings
from tests.deploy.deploy_helpers import (
    ALL_INTERFACES,
    ROOT,
    dockerfile,
    image_env,
    load_with_env,
    setting_names,
)

K8S = ROOT / "deploy" / "k8s"
KUSTOMIZATIONS = {"base": K8S / "base", "small": K8S / "overlays" / "small"}
KUBERNETES = kubernetes_validate.latest_version()
CRDS = {
    "ServiceMonitor": ROOT / "deploy" / "schemas" / "monitoring.coreos.com_servicemonitors.yaml",
    "PrometheusRule": ROOT / "deploy" / "schemas" / "monitoring.coreos.com_prometheusrules.yaml",
}
KINDS = {"ServiceAccount", "ConfigMap", "Service", "StatefulSet", "PodDisruptionBudget"}
#: The Secret the operator creates (deploy/README.md, "Secrets"): its keys per kustomization.
SECRET_NAME = "leadscore-secrets"  # noqa: S105 - a name, not a secret
SECRET_KEYS = {
    "base": {"LEADSCORE_API_TOKEN"},
    "small": {
        "LEADSCORE_API_TOKEN",
        "LEADSCORE_KAFKA_SASL_USERNAME",
        "LEADSCORE_KAFKA_SASL_PASSWORD",
    },
}
#: What the downward API gives a pod (fieldRef), for the settings check.
FIELD_REFS = {"metadata.name": "leadscore-0", "status.podIP": "10.1.2.3"}


@pytest.fixture(scope="module")
def kustomize() -> str:
    """kustomize from the PATH or built once into .cache (kustomize.sh)."""
    found = subprocess.run([str(K8S / "kustomize.sh")], capture_output=True, text=True,
                           timeout=900, check=False)  # fmt: skip
    if found.returncode != 0:
        pytest.fail(found.stderr.strip(), pytrace=False)
    return found.stdout.strip()


def render(kustomize: str, name: str) -> list[dict[str, Any]]:
    done = subprocess.run([kustomize, "build", str(KUSTOMIZATIONS[name])], capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.fixture(scope="module")
def rendered(kustomize: str) -> dict[str, list[dict[str, Any]]]:
    return {name: render(kustomize, name) for name in KUSTOMIZATIONS}


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(found) == 1, (kind, name, [d["metadata"]["name"] for d in found])
    return found[0]


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (main,) = one(docs, "StatefulSet")["spec"]["template"]["spec"]["containers"]
    return main  # type: ignore[no-any-return]


def strict(schema: Any) -> Any:
    """A CRD schema that rejects unknown fields, as kubectl's strict field validation does."""
    if isinstance(schema, dict):
        schema = {k: strict(v) for k, v in schema.items()}
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


def crd_validator(kind: str) -> jsonschema.Draft7Validator:
    crd = yaml.safe_load(CRDS[kind].read_text())
    assert crd["spec"]["names"]["kind"] == kind
    (served,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    return jsonschema.Draft7Validator(strict(served["schema"]["openAPIV3Schema"]))


def validate(doc: dict[str, Any]) -> None:
    """Raise on an invalid resource: kubernetes-validate (strict) or the vendored CRD schema."""
    if doc["kind"] in CRDS:
        assert doc["apiVersion"] == "monitoring.coreos.com/v1"
        crd_validator(doc["kind"]).validate(doc)
    else:
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)


# ----- rendering and validation ------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(KUSTOMIZATIONS))
def test_every_rendered_resource_is_valid(
    rendered: dict[str, list[dict[str, Any]]], name: str
) -> None:
    docs = rendered[name]
    kinds = {d["kind"] for d in docs}
    expected = KINDS | set(CRDS) | ({"Namespace"} if name != "base" else set())
    assert kinds == expected, kinds ^ expected
    for doc in docs:
        validate(doc)  # raises with the resource and the field at fault


def test_validation_rejects_mistakes(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """The checks above would catch a wrong type, a misspelt field or a missing required one."""
    docs = rendered["small"]
    statefulset = copy.deepcopy(one(docs, "StatefulSet"))
    statefulset["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(statefulset)
    statefulset = copy.deepcopy(one(docs, "StatefulSet"))
    statefulset["spec"]["template"]["spec"]["terminationGracePeriod"] = 90
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(statefulset)
    monitor = copy.deepcopy(one(docs, "ServiceMonitor"))
    monitor["spec"]["endpoints"][0]["intervall"] = "15s"
    with pytest.raises(jsonschema.ValidationError, match="intervall"):
        validate(monitor)
    rule = copy.deepcopy(one(docs, "PrometheusRule"))
    del rule["spec"]["groups"][0]["name"]
    with pytest.raises(jsonschema.ValidationError, match="name"):
        validate(rule)


def test_the_overlay_puts_everything_in_its_namespace(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    docs = rendered["small"]
    namespace = one(docs, "Namespace")["metadata"]["name"]
    for doc in docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == namespace, doc["metadata"]["name"]
    assert all("namespace" not in d["metadata"] for d in rendered["base"])


# ----- the workers -------------------------------------------------------------------------------


def pod_env(main: dict[str, Any], name: str, ca_file: Path) -> dict[str, str]:
    """The container's LEADSCORE_* variables as the pod gets them: the image's ENV, the env
    list (downward API filled in), the operator's Secret (envFrom) with its documented keys."""
    env = {k: v for k, v in image_env().items() if k.startswith("LEADSCORE_")}
    for item in main["env"]:
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            env[item["name"]] = FIELD_REFS[item["valueFrom"]["fieldRef"]["fieldPath"]]
    (source,) = main["envFrom"]
    assert source["secretRef"]["name"] == SECRET_NAME
    env.update({key: f"value-of-{key.lower()}" for key in SECRET_KEYS[name]})
    if "LEADSCORE_KAFKA_SSL_CA_LOCATION" in env:  # the mounted Secret's file, here a stand-in
        env["LEADSCORE_KAFKA_SSL_CA_LOCATION"] = str(ca_file)
    return env


@pytest.mark.parametrize("name", sorted(KUSTOMIZATIONS))
def test_the_pod_environment_loads(
    rendered: dict[str, list[dict[str, Any]]],
    name: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    main = container(rendered[name])
    named = {item["name"] for item in main["env"]} | SECRET_KEYS[name]
    assert named <= setting_names(), sorted(named - setting_names())
    ca = tmp_path / "ca.crt"
    ca.write_text("stand-in\n")
    settings = load_with_env(monkeypatch, pod_env(main, name, ca))
    assert settings.instance_id == FIELD_REFS["metadata.name"]  # the pod name, stable per pod
    assert settings.web_advertised_host == FIELD_REFS["status.podIP"]
    assert settings.web_host == ALL_INTERFACES
    assert settings.replication_factor == 3
    assert settings.api_token is not None
    if name == "small":
        assert settings.kafka_security_protocol == "SASL_SSL"
        assert settings.kafka_sasl_mechanism == "SCRAM-SHA-512"
    assert re.fullmatch(r"[\w.-]+(\.svc)?:\d+", settings.bootstrap_servers)


def test_the_secret_is_documented(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """No Secret is rendered (nothing here holds a credential); the README says how to make it."""
    readme = (ROOT / "deploy" / "README.md").read_text()
    command = rf"kubectl[^\n]*create secret generic {SECRET_NAME}((?:[^\n]*\\\n)*[^\n]*)"
    commands = re.findall(command, readme)
    documented = [set(re.findall(r"--from-literal=(LEADSCORE_\w+)=", c)) for c in commands]
    for name in KUSTOMIZATIONS:
        assert all(d["kind"] != "Secret" for d in rendered[name])
        assert SECRET_KEYS[name] in documented, (name, documented)
    assert "create secret generic leadscore-kafka-ca --from-file=ca.crt=" in readme


@pytest.mark.parametrize("name", sorted(KUSTOMIZATIONS))
def test_the_statefulset_keeps_identity_and_state(
    rendered: dict[str, list[dict[str, Any]]], name: str
) -> None:
    docs = rendered[name]
    statefulset = one(docs, "StatefulSet")
    spec = statefulset["spec"]
    pod = spec["template"]["spec"]
    main = container(docs)
    env = {item["name"]: item for item in main["env"]}
    assert env["LEADSCORE_INSTANCE_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    # RocksDB on the pod's own volume, at LEADSCORE_DATA_DIR
    (claim,) = spec["volumeClaimTemplates"]
    mounts = {m["name"]: m for m in main["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]]["mountPath"] == env["LEADSCORE_DATA_DIR"]["value"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    # the command is a real CLI invocation, and the image's entry point is leadscore
    assert _build_parser().parse_args(main["args"]).command == "worker"
    assert main["image"].split(":")[0] == "leadscore"
    assert spec["replicas"] >= 2
    assert spec["podManagementPolicy"] == "Parallel"
    assert pod["automountServiceAccountToken"] is False


@pytest.mark.parametrize("name", sorted(KUSTOMIZATIONS))
def test_probes_security_and_resources(
    rendered: dict[str, list[dict[str, Any]]], name: str
) -> None:
    docs = rendered[name]
    pod = one(docs, "StatefulSet")["spec"]["template"]["spec"]
    main = container(docs)
    env = {item["name"]: item.get("value") for item in main["env"]}
    (port,) = main["ports"]
    assert str(port["containerPort"]) == env["LEADSCORE_WEB_PORT"]
    assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port["name"]}
    assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port["name"]}
    assert main["startupProbe"]["httpGet"] == {"path": "/healthz", "port": port["name"]}
    # non-root: the image's numeric user, which owns nothing but the volume (fsGroup)
    (user,) = [i.args for i in dockerfile() if i.stage == "runtime" and i.op == "USER"]
    uid, gid = (int(part) for part in user.split(":"))
    context = pod["securityContext"]
    assert context["runAsNonRoot"] is True and context["runAsUser"] == uid != 0
    assert context["runAsGroup"] == gid and context["fsGroup"] == gid
    assert main["securityContext"]["allowPrivilegeEscalation"] is False
    assert main["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert main["securityContext"]["readOnlyRootFilesystem"] is True
    assert "LEADSCORE_DATA_DIR" in env and "/tmp" in {m["mountPath"] for m in main["volumeMounts"]}
    resources = main["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"]) and "memory" in resources["limits"]


@pytest.mark.parametrize("name", sorted(KUSTOMIZATIONS))
def test_the_grace_period_covers_a_clean_stop(
    rendered: dict[str, list[dict[str, Any]]], name: str
) -> None:
    """SIGTERM: the loop commits, then the consumer's close commits again in its revoke callback;
    each transactional call is bounded by LEADSCORE_KAFKA_CALL_TIMEOUT_S. The grace period must
    cover both, or a slow broker turns a clean stop into a kill with an open transaction."""
    docs = rendered[name]
    grace = one(docs, "StatefulSet")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    env = {item["name"]: item.get("value") for item in container(docs)["env"]}
    fields = Settings.model_fields
    call_timeout_s = float(
        env.get("LEADSCORE_KAFKA_CALL_TIMEOUT_S") or fields["kafka_call_timeout_s"].default
    )
    interval_ms = float(
        env.get("LEADSCORE_COMMIT_INTERVAL_MS") or fields["commit_interval_ms"].default
    )
    assert grace > 2 * call_timeout_s + interval_ms / 1000, (grace, call_timeout_s)


# ----- the plan, the Services, the PDB ----------------------------------------------------------


@pytest.mark.parametrize("name", sorted(KUSTOMIZATIONS))
def test_the_plan_configmap_is_plans_reference(
    rendered: dict[str, list[dict[str, Any]]], name: str
) -> None:
    docs = rendered[name]
    main = container(docs)
    pod = one(docs, "StatefulSet")["spec"]["template"]["spec"]
    env = {item["name"]: item.get("value") for item in main["env"]}
    plan_path = Path(env["LEADSCORE_PLAN_PATH"])
    (mount,) = [m for m in main["volumeMounts"] if m["mountPath"] == str(plan_path.parent)]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    configmap = one(docs, "ConfigMap", volume["configMap"]["name"])
    assert configmap["metadata"]["name"].startswith("leadscore-plan-")  # hashed: changes roll
    assert configmap["data"] == {plan_path.name: (ROOT / "plans" / "reference.yaml").read_text()}


def test_the_copies_in_the_base_are_fresh() -> None:
    done = subprocess.run([sys.executable, str(K8S / "sync.py"), "--check"], capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


@pytest.mark.parametrize("name", sorted(KUSTOMIZATIONS))
def test_services_and_the_disruption_budget_select_the_workers(
    rendered: dict[str, list[dict[str, Any]]], name: str
) -> None:
    docs = rendered[name]
    statefulset = one(docs, "StatefulSet")
    labels = statefulset["spec"]["template"]["metadata"]["labels"]
    assert selects(statefulset["spec"]["selector"]["matchLabels"], labels)
    port_names = {p["name"] for p in container(docs)["ports"]}
    headless = one(docs, "Service", statefulset["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True
    api = one(docs, "Service", "leadscore")
    assert "clusterIP" not in api["spec"] and "publishNotReadyAddresses" not in api["spec"]
    for service in (headless, api):
        assert selects(service["spec"]["selector"], labels)
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names
    pdb = one(docs, "PodDisruptionBudget")
    assert selects(pdb["spec"]["selector"]["matchLabels"], labels)
    assert pdb["spec"]["maxUnavailable"] == 1 < statefulset["spec"]["replicas"]


# ----- the Prometheus operator -------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(KUSTOMIZATIONS))
def test_the_servicemonitor_scrapes_every_worker_as_job_leadscore(
    rendered: dict[str, list[dict[str, Any]]], name: str
) -> None:
    docs = rendered[name]
    monitor = one(docs, "ServiceMonitor")["spec"]
    services = [d for d in docs if d["kind"] == "Service"]
    wanted = monitor["selector"]["matchLabels"]
    chosen = [s for s in services if selects(wanted, s["metadata"]["labels"])]
    # only the headless Service: it lists not-ready pods too (LeadscoreNotReady needs them), and
    # selecting both Services would scrape each worker twice
    headless = one(docs, "StatefulSet")["spec"]["serviceName"]
    assert [s["metadata"]["name"] for s in chosen] == [headless]
    assert chosen[0]["metadata"]["labels"][monitor["jobLabel"]] == "leadscore"
    (endpoint,) = monitor["endpoints"]
    assert endpoint["port"] in {p["name"] for p in chosen[0]["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    alerts = (ROOT / "deploy" / "prometheus" / "alerts.yml").read_text()
    assert 'job="leadscore"' in alerts


@pytest.mark.parametrize("name", sorted(KUSTOMIZATIONS))
def test_the_prometheusrule_holds_the_alert_rules(
    rendered: dict[str, list[dict[str, Any]]], name: str
) -> None:
    rule = one(rendered[name], "PrometheusRule")
    alerts = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    assert rule["spec"]["groups"] == alerts["groups"]
    assert {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}


def test_the_overlay_mounts_the_kafka_ca_where_the_setting_points(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    docs = rendered["small"]
    main = container(docs)
    pod = one(docs, "StatefulSet")["spec"]["template"]["spec"]
    env = {item["name"]: item.get("value") for item in main["env"]}
    ca = Path(env["LEADSCORE_KAFKA_SSL_CA_LOCATION"])
    (mount,) = [m for m in main["volumeMounts"] if m["mountPath"] == str(ca.parent)]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["secret"]["secretName"] == "leadscore-kafka-ca"
    assert volume["secret"]["items"] == [{"key": "ca.crt", "path": ca.name}]
    assert mount["readOnly"] is True
    # credentials come only from the Secret, never as literal values in the manifests
    assert not SECRET_KEYS["small"] & set(env), sorted(SECRET_KEYS["small"] & set(env))
