"""Kubernetes manifests, checked the way a reviewer would (no cluster runs here).

Built-in kinds are validated against the Kubernetes JSON schemas that the
``kubernetes-validate`` package ships (offline, strict); KEDA's ScaledObject is checked
by hand. The production overlay is applied with a small strategic merge so the checks
see what ``kubectl apply -k`` would.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "kubernetes"
SERVICES = {"ingest": 8001, "router": 8002, "sla-timer": 8003, "notifier": 8004,
            "postmortem": 8005}
#: Topics each consumer reads (what its KEDA triggers must watch).
CONSUMES = {
    "router": {"tickets", "sla"},
    "sla-timer": {"tickets", "assignments"},
    "notifier": {"tickets", "assignments", "sla"},
    "postmortem": {"tickets", "assignments", "sla", "notifications"},
}
K8S_VERSION = "1.31.0"


def load(directory: Path) -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    docs: list[dict[str, Any]] = []
    for resource in kustomization.get("resources", []):
        path = directory / resource
        if path.is_dir():
            docs += load(path)
        else:
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def merge(base: Any, patch: Any) -> Any:
    """Strategic merge as kustomize applies it to the fields we patch (lists by name)."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            out[key] = merge(base[key], value) if key in base else value
        return out
    if isinstance(base, list) and isinstance(patch, list) and all(
        isinstance(x, dict) and "name" in x for x in base + patch
    ):
        by_name = {x["name"]: x for x in base}
        for item in patch:
            by_name[item["name"]] = merge(by_name.get(item["name"], {}), item)
        return list(by_name.values())
    return patch


def production() -> list[dict[str, Any]]:
    overlay = K8S / "overlays" / "production"
    kustomization = yaml.safe_load((overlay / "kustomization.yaml").read_text())
    docs = load(overlay)
    for entry in kustomization.get("patches", []):
        patch = yaml.safe_load((overlay / entry["path"]).read_text())
        target = [d for d in docs if d["kind"] == patch["kind"]
                  and d["metadata"]["name"] == patch["metadata"]["name"]]
        assert target, f"{entry['path']} patches a resource the base does not have"
        docs[docs.index(target[0])] = merge(target[0], patch)
    return docs


BASE = load(K8S / "base")
PROD = production()


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


@pytest.mark.parametrize("docs", [BASE, PROD], ids=["base", "production"])
def test_builtin_resources_match_the_kubernetes_schemas(docs: list[dict[str, Any]]) -> None:
    for doc in docs:
        if doc["apiVersion"].startswith("keda.sh/"):
            continue
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_has_deployment_service_pdb_and_probes(name: str) -> None:
    port = SERVICES[name]
    deployment = by_kind(PROD, "Deployment")[name]
    main = container(deployment)
    scripts = tomllib.loads((ROOT / "services" / name / "pyproject.toml").read_text())
    assert main["command"][0] in scripts["project"]["scripts"]
    assert main["command"] == [f"escalator-{name}", "serve"]
    assert main["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    spec = deployment["spec"]["template"]["spec"]
    # Longer than uvicorn's 30 s graceful shutdown, which waits for the consumer batch.
    assert spec["terminationGracePeriodSeconds"] >= 45
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert "replicas" not in deployment["spec"], "the autoscaler owns replicas"

    own = by_kind(PROD, "ConfigMap")[f"{name}-config"]["data"]
    assert {"configMapRef": {"name": f"{name}-config"}} in main["envFrom"]
    assert {"configMapRef": {"name": "escalator-common"}} in main["envFrom"]
    assert own["ESCALATOR_PORT"] == str(port)
    assert own["ESCALATOR_DB_SCHEMA"] == name.replace("-", "_")
    env = {e["name"]: e for e in main["env"]}
    assert env["ESCALATOR_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "escalator-secrets"
    assert env["ESCALATOR_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "escalator-secrets"

    service = by_kind(PROD, "Service")[name]
    assert service["spec"]["ports"][0]["port"] == port
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    pdb = by_kind(PROD, "PodDisruptionBudget")[name]
    assert pdb["spec"]["selector"] == deployment["spec"]["selector"]


def test_settings_every_service_needs_come_from_config_maps_and_secrets() -> None:
    from escalator.shared.settings import ServiceSettings

    common = by_kind(PROD, "ConfigMap")["escalator-common"]["data"]
    assert common["ESCALATOR_ENV"] == "production"
    assert common["ESCALATOR_HOST"] == "0.0.0.0"
    for name, config_map in by_kind(PROD, "ConfigMap").items():
        for key in config_map.get("data", {}) if name != "escalator-config" else ():
            assert key.removeprefix("ESCALATOR_").lower() in ServiceSettings.model_fields, key
    secrets = (K8S / "overlays" / "production" / "secrets.env.example").read_text()
    refs = {
        e["valueFrom"]["secretKeyRef"]["key"]
        for d in by_kind(PROD, "Deployment").values() for e in container(d)["env"]
        if "valueFrom" in e
    }
    for key in refs:
        assert f"{key}=" in secrets, f"secrets.env.example lacks {key}"


def test_ingest_scales_on_cpu() -> None:
    hpa = by_kind(PROD, "HorizontalPodAutoscaler")["ingest"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "ingest"
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    assert hpa["spec"]["minReplicas"] >= 2


@pytest.mark.parametrize("name", CONSUMES)
def test_consumers_scale_on_lag_within_the_partition_count(name: str) -> None:
    scaled = by_kind(PROD, "ScaledObject")[name]
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert scaled["spec"]["scaleTargetRef"]["name"] in by_kind(PROD, "Deployment")
    partitions = int(by_kind(PROD, "ConfigMap")["escalator-common"]["data"][
        "ESCALATOR_TOPIC_PARTITIONS"])
    assert 1 <= scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"]
    assert scaled["spec"]["maxReplicaCount"] <= partitions
    deployment_env = by_kind(PROD, "ConfigMap")[f"{name}-config"]["data"]
    topics = set()
    for trigger in scaled["spec"]["triggers"]:
        assert trigger["type"] == "kafka"
        meta = trigger["metadata"]
        assert meta["consumerGroup"] == deployment_env["ESCALATOR_CONSUMER_GROUP"]
        assert int(meta["lagThreshold"]) > 0
        assert meta["allowIdleConsumers"] == "false"
        assert meta["bootstrapServers"] == by_kind(PROD, "ConfigMap")["escalator-common"][
            "data"]["ESCALATOR_KAFKA_BOOTSTRAP_SERVERS"]
        topics.add(meta["topic"])
    assert topics == CONSUMES[name]


def test_overlay_ships_the_sample_configuration() -> None:
    shipped = (ROOT / "config" / "escalator.yaml").read_text()
    assert (K8S / "overlays" / "production" / "escalator.yaml").read_text() == shipped


def test_overlay_targets_production() -> None:
    overlay = yaml.safe_load((K8S / "overlays" / "production" / "kustomization.yaml").read_text())
    assert overlay["resources"] == ["../../base"]
    assert overlay["namespace"]
    assert any(image["name"] == "escalator" and image.get("newTag") for image in overlay["images"])
    generators = {g["name"] for g in overlay["configMapGenerator"]}
    assert "escalator-config" in generators
    assert {g["name"] for g in overlay["secretGenerator"]} == {"escalator-secrets"}
