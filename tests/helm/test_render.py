"""The rendered chart: lint, Kubernetes schemas, security, probes, identity, storage."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from kubernetes_validate import utils as k8s_validate  # type: ignore[import-untyped]

from .chart import (
    CASES,
    CHART,
    KUBE_VERSION,
    NAMESPACE,
    OLDEST_KUBE_VERSION,
    RELEASE,
    Manifest,
    Rendered,
    containers,
    env_of,
    helm,
    render,
    rendered_case,
    values_args,
    worker,
)

# Every test here renders the chart with the helm binary.
pytestmark = pytest.mark.integration

#: Kinds from CRDs, which kubernetes-validate has no schema for; checked by hand below.
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}  # PrometheusRule: test_prometheus_rules.py


def test_helm_lint_strict(case: str) -> None:
    done = helm("lint", str(CHART), "--strict", *values_args(CASES[case]))
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("kube_version", [OLDEST_KUBE_VERSION, KUBE_VERSION])
def test_manifests_match_kubernetes_schemas(rendered: Rendered, kube_version: str) -> None:
    """Every manifest validates, strictly (no unknown fields), offline, against the JSON
    schemas of the Kubernetes release bundled in the kubernetes-validate package."""
    problems: list[str] = []
    for manifest in rendered.manifests:
        if manifest["kind"] in CRD_KINDS:
            continue
        try:
            k8s_validate.validate(manifest, kube_version, strict=True)
        except k8s_validate.ValidationError as exc:
            path = "/".join(str(p) for p in exc.path)
            problems.append(f"{manifest['kind']} {path}: {exc.message}")
        except k8s_validate.SchemaNotFoundError as exc:
            problems.append(exc.message)
    assert not problems, "\n".join(problems)


def test_schema_validation_is_not_vacuous() -> None:
    """A manifest with an unknown field or a wrong type fails: the check above is real."""
    statefulset = rendered_case("default").one("StatefulSet")
    typo = copy.deepcopy(statefulset)
    typo["spec"]["replica"] = 1
    wrong_type = copy.deepcopy(statefulset)
    wrong_type["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = "soon"
    for bad in (typo, wrong_type):
        with pytest.raises(k8s_validate.ValidationError):
            k8s_validate.validate(bad, KUBE_VERSION, strict=True)


def _check_service_monitor(sm: Manifest) -> list[str]:
    """The fields of monitoring.coreos.com/v1 ServiceMonitor that the chart sets."""
    problems: list[str] = []
    allowed_spec = {"jobLabel", "namespaceSelector", "selector", "endpoints"}
    allowed_endpoint = {
        "port",
        "path",
        "interval",
        "scrapeTimeout",
        "honorLabels",
        "relabelings",
        "metricRelabelings",
    }
    spec = sm["spec"]
    problems += [f"spec.{key}: unknown" for key in set(spec) - allowed_spec]
    if not isinstance(spec.get("selector", {}).get("matchLabels"), dict):
        problems.append("spec.selector.matchLabels: missing")
    endpoints = spec.get("endpoints")
    if not isinstance(endpoints, list) or not endpoints:
        problems.append("spec.endpoints: missing")
        return problems
    for i, endpoint in enumerate(endpoints):
        problems += [f"endpoints[{i}].{k}: unknown" for k in set(endpoint) - allowed_endpoint]
        if not isinstance(endpoint.get("port"), str):
            problems.append(f"endpoints[{i}].port: must name the Service port")
        if not isinstance(endpoint.get("honorLabels", False), bool):
            problems.append(f"endpoints[{i}].honorLabels: must be a boolean")
        for key in ("relabelings", "metricRelabelings"):
            if not isinstance(endpoint.get(key, []), list):
                problems.append(f"endpoints[{i}].{key}: must be a list")
    return problems


def _monitored_service(rendered: Rendered, sm: Manifest) -> Manifest:
    """The one Service of the release that the ServiceMonitor selects."""
    selector = sm["spec"]["selector"]["matchLabels"]
    selected = [
        s for s in rendered.of_kind("Service") if _selects(selector, s["metadata"]["labels"])
    ]
    names = [s["metadata"]["name"] for s in selected]
    assert len(selected) == 1, f"the ServiceMonitor selects {names}"
    return selected[0]


@pytest.mark.parametrize(
    ("values_case", "sets"),
    [
        ("default", ["metrics.serviceMonitor.enabled=true"]),
        ("full", []),
        ("existing-configmap", ["metrics.serviceMonitor.enabled=true"]),
        ("full", ["service.labels=null", "commonLabels=null"]),
    ],
)
def test_service_monitor_selects_one_service(values_case: str, sets: list[str]) -> None:
    """Each pod is scraped once: a ServiceMonitor scrapes every endpoint of every Service it
    selects, so selecting the headless Service too would count every pod twice (and double
    every sum). It selects the metrics Service, never the StatefulSet's headless one."""
    rendered = render(CASES[values_case], sets)
    sm = rendered.one("ServiceMonitor")
    service = _monitored_service(rendered, sm)
    headless = rendered.one("StatefulSet")["spec"]["serviceName"]
    assert service["metadata"]["name"] != headless
    assert service["spec"].get("clusterIP") != "None"


def test_service_monitor_shape_and_target(rendered: Rendered) -> None:
    monitors = rendered.of_kind("ServiceMonitor")
    if not monitors:
        return
    sm = monitors[0]
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert not _check_service_monitor(sm)
    service = _monitored_service(rendered, sm)
    port_names = {port["name"] for port in service["spec"]["ports"]}
    assert {endpoint["port"] for endpoint in sm["spec"]["endpoints"]} <= port_names
    assert sm["spec"]["endpoints"][0]["path"] == "/metrics"
    assert sm["spec"]["namespaceSelector"]["matchNames"] == [NAMESPACE]


def test_every_workload_runs_restricted(rendered: Rendered) -> None:
    """Pod Security Standards "restricted", plus a read-only root filesystem."""
    for workload, pod in rendered.pod_specs():
        name = f"{workload['kind']}/{workload['metadata']['name']}"
        pod_sc = pod["securityContext"]
        assert pod_sc["runAsNonRoot"] is True, name
        assert pod_sc["runAsUser"] != 0, name
        assert pod_sc["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert pod["automountServiceAccountToken"] is False, name
        for container in containers(pod):
            sc = container["securityContext"]
            where = f"{name} container {container['name']}"
            assert sc["runAsNonRoot"] is True, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["privileged"] is False, where
            assert sc["capabilities"] == {"drop": ["ALL"]}, where
            assert "add" not in sc["capabilities"], where
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, where


def _writable_mounts(pod: Manifest, container: Manifest) -> dict[str, Manifest]:
    """Mount path -> volume (or claim template name) of every writable mount."""
    volumes = {volume["name"]: volume for volume in pod.get("volumes", [])}
    writable: dict[str, Manifest] = {}
    for mount in container.get("volumeMounts", []):
        if not mount.get("readOnly", False):
            writable[mount["mountPath"]] = volumes.get(mount["name"], {"name": mount["name"]})
    return writable


def test_only_data_and_tmp_are_writable(rendered: Rendered) -> None:
    statefulset = rendered.one("StatefulSet")
    pod = statefulset["spec"]["template"]["spec"]
    container = worker(rendered)
    writable = _writable_mounts(pod, container)
    data_dir = env_of(container)["BOUNCEWATCH_DATA_DIR"]["value"]
    assert set(writable) == {data_dir, "/tmp"}
    assert "emptyDir" in writable["/tmp"]
    claim_names = {
        t["metadata"]["name"] for t in statefulset["spec"].get("volumeClaimTemplates", [])
    }
    data_volume = writable[data_dir]
    assert "emptyDir" in data_volume or data_volume["name"] in claim_names
    for workload, job_pod in rendered.pod_specs():
        if workload["kind"] == "Job":
            for job_container in containers(job_pod):
                assert set(_writable_mounts(job_pod, job_container)) == {"/tmp"}


def test_probes_on_the_web_port(rendered: Rendered) -> None:
    container = worker(rendered)
    port = int(env_of(container)["BOUNCEWATCH_WEB_PORT"]["value"])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": port}
    liveness, readiness = container["livenessProbe"], container["readinessProbe"]
    assert liveness["httpGet"] == {"path": "/healthz", "port": "http"}
    assert readiness["httpGet"] == {"path": "/readyz", "port": "http"}
    # Liveness must outlast a slow table recovery: it never depends on readiness, and
    # gives at least a couple of minutes before a restart.
    assert liveness["failureThreshold"] * liveness["periodSeconds"] >= 60
    if "startupProbe" in container:
        assert container["startupProbe"]["httpGet"]["path"] == "/healthz"


def test_services_expose_the_web_port(rendered: Rendered) -> None:
    pod_labels = rendered.one("StatefulSet")["spec"]["template"]["metadata"]["labels"]
    services = {s["metadata"]["name"]: s for s in rendered.of_kind("Service")}
    statefulset = rendered.one("StatefulSet")
    headless = services.pop(statefulset["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    assert len(services) == 1
    (service,) = services.values()
    for svc in (service, headless):
        assert svc["spec"]["selector"].items() <= pod_labels.items()
        assert [p["targetPort"] for p in svc["spec"]["ports"]] == ["http"]


def test_static_membership_and_shutdown(rendered: Rendered, case: str) -> None:
    statefulset = rendered.one("StatefulSet")
    spec = statefulset["spec"]
    assert spec["template"]["spec"]["terminationGracePeriodSeconds"] >= 60
    env = env_of(worker(rendered))
    if case == "emptydir":  # static membership switched off in that case
        assert "BOUNCEWATCH_INSTANCE_ID" not in env
        return
    assert spec["podManagementPolicy"] == "Parallel"
    assert env["BOUNCEWATCH_INSTANCE_ID"] == {
        "name": "BOUNCEWATCH_INSTANCE_ID",
        "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
    }


def test_state_on_claim_or_empty_dir(rendered: Rendered, case: str) -> None:
    statefulset = rendered.one("StatefulSet")
    templates = statefulset["spec"].get("volumeClaimTemplates", [])
    volumes = {v["name"]: v for v in statefulset["spec"]["template"]["spec"]["volumes"]}
    if case == "emptydir":
        assert templates == []
        assert volumes["data"]["emptyDir"] == {"sizeLimit": "2Gi"}
        assert env_of(worker(rendered))["BOUNCEWATCH_STORE"]["value"] == "memory://"
    else:
        assert [t["metadata"]["name"] for t in templates] == ["data"]
        assert "data" not in volumes
        assert env_of(worker(rendered))["BOUNCEWATCH_STORE"]["value"] == "rocksdb://"


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    return bool(selector) and selector.items() <= labels.items()


def test_selectors_match_the_worker_pods(rendered: Rendered) -> None:
    pod_labels = rendered.one("StatefulSet")["spec"]["template"]["metadata"]["labels"]
    assert _selects(rendered.one("StatefulSet")["spec"]["selector"]["matchLabels"], pod_labels)
    for pdb in rendered.of_kind("PodDisruptionBudget"):
        assert _selects(pdb["spec"]["selector"]["matchLabels"], pod_labels)
    for policy in rendered.of_kind("NetworkPolicy"):
        assert _selects(policy["spec"]["podSelector"]["matchLabels"], pod_labels)


def test_recommended_labels_everywhere(rendered: Rendered) -> None:
    for manifest in rendered.manifests:
        labels = manifest["metadata"]["labels"]
        for key in (
            "app.kubernetes.io/name",
            "app.kubernetes.io/instance",
            "app.kubernetes.io/version",
            "app.kubernetes.io/managed-by",
            "app.kubernetes.io/component",
            "helm.sh/chart",
        ):
            assert key in labels, f"{manifest['kind']} lacks {key}"
        assert labels["app.kubernetes.io/instance"] == RELEASE


def test_names_come_from_the_full_name(rendered: Rendered, case: str) -> None:
    prefix = "deliverability-alerts" if case == "existing-configmap" else f"{RELEASE}-bouncewatch"
    for manifest in rendered.manifests:
        assert manifest["metadata"]["name"].startswith(prefix), manifest["metadata"]["name"]
        assert len(manifest["metadata"]["name"]) <= 63


def test_topics_job_is_a_hook_with_the_kafka_settings() -> None:
    rendered = rendered_case("full")
    job = rendered.one("Job")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["topics", "create"]
    job_env = env_of(container)
    worker_env = env_of(worker(rendered))
    for name in (
        "BOUNCEWATCH_KAFKA_BOOTSTRAP_SERVERS",
        "BOUNCEWATCH_KAFKA_SECURITY_PROTOCOL",
        "BOUNCEWATCH_KAFKA_SASL_PASSWORD_FILE",
        "BOUNCEWATCH_APP_ID",
        "BOUNCEWATCH_TOPIC_SILENCES",
        "BOUNCEWATCH_TOPIC_PARTITIONS",
        "BOUNCEWATCH_TOPIC_REPLICATION_FACTOR",
    ):
        assert job_env[name] == worker_env[name]
    # The Job creates the topics, so the worker does not try (it may lack the ACL).
    assert worker_env["BOUNCEWATCH_CREATE_TOPICS"]["value"] == "false"
    default_env = env_of(worker(rendered_case("default")))
    assert default_env["BOUNCEWATCH_CREATE_TOPICS"]["value"] == "true"
    # A pre-install hook runs before the release's other resources exist.
    pod = job["spec"]["template"]["spec"]
    own_names = {m["metadata"]["name"] for m in rendered.manifests if m["kind"] != "Job"}
    assert pod.get("serviceAccountName") not in own_names
    for volume in pod["volumes"]:
        assert "configMap" not in volume
    assert rendered_case("default").of_kind("Job") == []


def test_image_defaults_to_app_version() -> None:
    container = worker(rendered_case("default"))
    assert container["image"] == "bouncewatch:0.1.0"
    assert container["args"] == ["worker"]
    full = worker(rendered_case("full"))
    assert full["image"].startswith("registry.example.com/platform/bouncewatch@sha256:")


def test_isp_resolution_settings_reach_the_worker() -> None:
    default = env_of(worker(rendered_case("default")))
    assert default["BOUNCEWATCH_ISP_UNKNOWN"]["value"] == "other"
    assert default["BOUNCEWATCH_MX_LOOKUP"]["value"] == "false"
    assert "BOUNCEWATCH_MX_NAMESERVERS" not in default
    env = env_of(
        worker(
            render(
                sets=[
                    "config.isp.unknown=domain",
                    "config.isp.mxLookup=true",
                    "config.isp.mxNameservers=10.0.0.10:53",
                ]
            )
        )
    )
    assert env["BOUNCEWATCH_ISP_UNKNOWN"]["value"] == "domain"
    assert env["BOUNCEWATCH_MX_LOOKUP"]["value"] == "true"
    assert env["BOUNCEWATCH_MX_NAMESERVERS"]["value"] == "10.0.0.10:53"


def test_ingest_batch_settings_reach_the_worker(tmp_path: Path) -> None:
    default = env_of(worker(rendered_case("default")))
    assert default["BOUNCEWATCH_INGEST_BATCH_MESSAGES"]["value"] == "1000000"
    assert default["BOUNCEWATCH_INGEST_BATCH_SECONDS"]["value"] == "1"
    # A values file, not --set: helm --set reads 2.5 as a string, which the schema refuses.
    values = tmp_path / "ingest.yaml"
    values.write_text("config:\n  ingest:\n    batchMessages: 2000\n    batchSeconds: 2.5\n")
    env = env_of(worker(render(values)))
    assert env["BOUNCEWATCH_INGEST_BATCH_MESSAGES"]["value"] == "2000"
    assert env["BOUNCEWATCH_INGEST_BATCH_SECONDS"]["value"] == "2.5"
