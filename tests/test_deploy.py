"""Deployment files: the Kubernetes manifests validate offline, and they agree with the service and the image."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from service.app import create_app
from service.server import SHUTDOWN_GRACE_S
from service.settings import ServiceSettings
from vitcore.threads import cgroup_cpu_limit

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "k8s"
K8S_VERSION = "1.33.0"
CORE_KINDS = {"Deployment", "Service", "HorizontalPodAutoscaler", "PersistentVolumeClaim"}


def _documents() -> dict[str, dict]:
    docs = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            docs[doc["kind"]] = doc
    return docs


DOCS = _documents()


@pytest.mark.parametrize("kind", sorted(CORE_KINDS))
def test_core_manifests_validate_against_the_kubernetes_schema(kind):
    kubernetes_validate.validate(DOCS[kind], K8S_VERSION, strict=True)


def test_schema_validation_can_fail():
    broken = copy.deepcopy(DOCS["Deployment"])
    broken["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] = {"cores": 2}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)
    typo = copy.deepcopy(DOCS["Service"])
    typo["spec"]["prots"] = typo["spec"].pop("ports")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(typo, K8S_VERSION, strict=True)


def _containers() -> list[dict]:
    return [DOCS["Deployment"]["spec"]["template"]["spec"]["containers"][0],
            DOCS["ServingRuntime"]["spec"]["containers"][0]]


def test_kserve_runtime_container_is_a_valid_pod_container():
    """KServe's CRDs have no schema in kubernetes-validate: their container is validated as a Pod's."""
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "vitserve"},
           "spec": {"containers": [DOCS["ServingRuntime"]["spec"]["containers"][0]]}}
    kubernetes_validate.validate(pod, K8S_VERSION, strict=True)


def test_inference_service_uses_the_runtime_with_protocol_v2():
    runtime, service = DOCS["ServingRuntime"], DOCS["InferenceService"]
    assert runtime["apiVersion"] == "serving.kserve.io/v1alpha1"
    assert service["apiVersion"] == "serving.kserve.io/v1beta1"
    model = service["spec"]["predictor"]["model"]
    assert model["runtime"] == runtime["metadata"]["name"] and model["protocolVersion"] == "v2"
    assert model["protocolVersion"] in runtime["spec"]["protocolVersions"]
    formats = [{k: f[k] for k in ("name", "version")} for f in runtime["spec"]["supportedModelFormats"]]
    assert model["modelFormat"] in formats
    env = {e["name"]: e.get("value") for e in runtime["spec"]["containers"][0]["env"]}
    assert env["VITSERVE_ARTIFACTS_DIR"] == "/mnt/models"  # where KServe's storage initializer puts storageUri
    assert int(env["VITSERVE_PORT"]) == runtime["spec"]["containers"][0]["ports"][0]["containerPort"]


def test_every_vitserve_setting_in_the_manifests_exists_and_validates():
    fields = {f"VITSERVE_{name.upper()}" for name in ServiceSettings.model_fields}
    for container in _containers():
        env = container["env"]
        names = [e["name"] for e in env if e["name"].startswith("VITSERVE_")]
        assert set(names) <= fields, set(names) - fields
        literal = {e["name"][len("VITSERVE_"):].lower(): e["value"] for e in env
                   if e["name"].startswith("VITSERVE_") and "value" in e}
        ServiceSettings(**literal)


def test_threads_follow_the_cpu_limit():
    for container in _containers():
        threads = next(e for e in container["env"] if e["name"] == "VITSERVE_THREADS")
        ref = threads["valueFrom"]["resourceFieldRef"]
        assert ref["resource"] == "limits.cpu" and ref["containerName"] == container["name"]
        assert container["resources"]["limits"]["cpu"] == container["resources"]["requests"]["cpu"]


def test_probes_and_hpa_point_at_what_exists():
    paths = set(create_app(ServiceSettings()).openapi()["paths"])
    deployment = DOCS["Deployment"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] in paths
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert DOCS["ServingRuntime"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["path"] in paths
    assert DOCS["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert DOCS["Service"]["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["artifacts"]["persistentVolumeClaim"]["claimName"] == DOCS["PersistentVolumeClaim"]["metadata"][
        "name"]
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert all((K8S / name).exists() for name in kustomization["resources"])


def test_dockerfile_layers_user_and_healthcheck():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim$", text, re.M)
    assert text.index("-r /tmp/requirements.txt") < text.index("COPY build_models")  # dependencies before code
    assert "loadtests" not in text.split("FROM deps AS serve")[1]
    assert re.search(r"^USER 10001$", text, re.M)
    assert "/health/ready" in text.split("HEALTHCHECK")[1]


@pytest.mark.parametrize(("files", "expected"), [
    ({"cpu.max": "max 100000"}, None),
    ({"cpu.max": "150000 100000"}, 2),
    ({"cpu.max": "50000 100000"}, 1),
    ({"cpu/cpu.cfs_quota_us": "400000", "cpu/cpu.cfs_period_us": "100000"}, 4),
    ({"cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.cfs_period_us": "100000"}, None),
    ({}, None),
])
def test_cgroup_cpu_limit(tmp_path, files, expected):
    for name, content in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(content)
    assert cgroup_cpu_limit(tmp_path) == expected


def test_grace_period_covers_the_prestop_pause_the_drain_and_the_shutdown():
    pod = DOCS["Deployment"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {item["name"]: item.get("value") for item in container["env"]}
    drain = ServiceSettings(drain_seconds=float(env["VITSERVE_DRAIN_SECONDS"])).drain_seconds
    pause = float(re.search(r"sleep\((\d+(?:\.\d+)?)\)", " ".join(
        container["lifecycle"]["preStop"]["exec"]["command"])).group(1))
    assert pod["terminationGracePeriodSeconds"] >= pause + drain + SHUTDOWN_GRACE_S


def test_command1_timing_stops_only_the_server_it_started():
    script = (ROOT / "deploy" / "command1_timing.sh").read_text()
    assert not re.search(r"\b(pkill|killall)\b", script)  # by name: would also stop anyone else's server
    assert "exec .venv/bin/python -m service --build-if-missing" in script and "command=$!" in script
    assert 'kill -TERM "$command"' in script
