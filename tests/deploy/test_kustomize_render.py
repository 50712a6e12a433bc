"""Every overlay renders with kubectl's kustomize into a complete, self-consistent install."""

from __future__ import annotations

from collections import Counter
from urllib.parse import urlsplit

import pytest
from deploy_support import (
    NAMESPACE,
    OVERLAYS,
    REPO_ROOT,
    TOLERATED_KUSTOMIZE_WARNINGS,
    Doc,
    Rendering,
    example_docs,
    flavour,
    pod_templates,
    render,
)

COMMON_KINDS = Counter(
    {
        "Namespace": 1,
        "ServiceAccount": 1,
        "ConfigMap": 1,
        "Service": 1,
        "Deployment": 1,
        "RayCluster": 1,
        "NetworkPolicy": 1,
    }
)
EXPECTED_KINDS = {
    # the state volume (SQLite store, results) and the model cache
    "cpu": COMMON_KINDS + Counter({"PersistentVolumeClaim": 2}),
    # the model cache; the store is an external PostgreSQL, results an object store
    "gpu": COMMON_KINDS + Counter({"PersistentVolumeClaim": 1, "PodDisruptionBudget": 1}),
    # the gpu overlay plus PostgreSQL: StatefulSet, Service, NetworkPolicy (its volume is a claim template)
    "gpu-postgres": COMMON_KINDS
    + Counter({"PersistentVolumeClaim": 1, "PodDisruptionBudget": 1, "StatefulSet": 1, "Service": 1})
    + Counter({"NetworkPolicy": 1}),
}
# Secrets the operator must create (deploy/README.md); every other secret reference is optional.
REQUIRED_SECRETS = {
    "cpu": {"moralscope-api-keys"},
    "gpu": {"moralscope-api-keys", "moralscope-store"},
    "gpu-postgres": {"moralscope-api-keys", "moralscope-postgres"},
}


def test_renders_without_unexpected_warnings(rendering: Rendering) -> None:
    unexpected = [
        line
        for line in rendering.stderr.splitlines()
        if line.strip() and not any(pattern.match(line) for pattern in TOLERATED_KUSTOMIZE_WARNINGS)
    ]
    assert unexpected == []


def test_renders_the_whole_install(overlay: str, rendering: Rendering) -> None:
    assert Counter(d["kind"] for d in rendering.docs) == EXPECTED_KINDS[overlay]
    names = [(d["kind"], d["metadata"]["name"]) for d in rendering.docs]
    assert len(set(names)) == len(names), f"duplicate objects: {names}"


def test_everything_lives_in_the_moralscope_namespace(rendering: Rendering) -> None:
    assert rendering.one("Namespace")["metadata"]["name"] == NAMESPACE
    for doc in rendering.docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == NAMESPACE, f"{doc['kind']}/{doc['metadata']['name']}"


def _images(docs: list[Doc], *, moralscope: bool = True) -> set[str]:
    images = set()
    for doc in docs:
        for pod in pod_templates(doc):
            if (pod.role != "postgres") == moralscope:
                images |= {c["image"] for c in pod.spec.get("containers", []) + pod.spec.get("initContainers", [])}
    return images


def _moralscope_images(docs: list[Doc]) -> set[str]:
    return _images(docs)


def test_one_fully_qualified_image_per_overlay(overlay: str, rendering: Rendering) -> None:
    # Ray Client needs identical Ray and Python packages in the API pod and the cluster.
    images = _moralscope_images(rendering.docs)
    assert len(images) == 1, images
    (image,) = images
    repository, _, tag = image.rpartition(":")
    assert "/" in repository, f"{image} should name a registry (set `images:` in the overlay)"
    kind = flavour(overlay)
    assert tag.endswith(f"-{kind}"), f"the {overlay} overlay must run the {kind} image, got {image}"
    assert tag != "latest"
    for other in _images(rendering.docs, moralscope=False):  # the in-cluster PostgreSQL: pinned too
        repository, _, tag = other.rpartition(":")
        assert "/" in repository, other
        assert tag[:1].isdigit(), f"{other}: pin a version"


def test_example_rayjob_uses_one_pinned_gpu_image() -> None:
    images = _moralscope_images(example_docs())
    assert len(images) == 1, images
    assert next(iter(images)).endswith("-gpu")


def test_settings_configmap_is_wired_into_the_api(rendering: Rendering) -> None:
    configmap = rendering.one("ConfigMap")
    container = rendering.one("Deployment")["spec"]["template"]["spec"]["containers"][0]
    # The generated name carries a content hash; the Deployment must follow it.
    assert [ref["configMapRef"]["name"] for ref in container["envFrom"]] == [configmap["metadata"]["name"]]
    assert configmap["metadata"]["name"].startswith("moralscope-settings-")


def test_api_reaches_the_overlays_ray_head(rendering: Rendering) -> None:
    address = rendering.one("ConfigMap")["data"]["MORALSCOPE_RAY_ADDRESS"]
    parts = urlsplit(address)
    cluster = rendering.one("RayCluster")
    head = cluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    client_ports = [p["containerPort"] for p in head["ports"] if p["name"] == "client"]
    assert parts.scheme == "ray"
    # KubeRay names the head service "<RayCluster name>-head-svc".
    assert parts.hostname == f"{cluster['metadata']['name']}-head-svc"
    assert client_ports == [parts.port] == [10001]


def test_service_selects_the_api_pods_on_their_http_port(rendering: Rendering) -> None:
    (service,) = [d for d in rendering.of_kind("Service") if d["metadata"]["name"] == "moralscope-api"]
    deployment = rendering.one("Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    container_ports = {
        p["name"]: p["containerPort"] for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]
    }
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] in container_ports
    # Not "moralscope": service links would then define MORALSCOPE_PORT=tcp://... in pods.
    assert service["metadata"]["name"] != "moralscope"


def test_volumes_refer_to_objects_that_exist(overlay: str) -> None:
    rendered = render(overlay).docs
    claims = {d["metadata"]["name"] for d in rendered if d["kind"] == "PersistentVolumeClaim"}
    configmaps = {d["metadata"]["name"] for d in rendered if d["kind"] == "ConfigMap"}
    for doc in rendered:
        for pod in pod_templates(doc):
            for volume in pod.spec.get("volumes", []):
                if "persistentVolumeClaim" in volume:
                    assert volume["persistentVolumeClaim"]["claimName"] in claims, pod.where
                if "configMap" in volume:
                    assert volume["configMap"]["name"] in configmaps, pod.where


def test_example_rayjob_refers_to_its_own_objects_or_the_gpu_overlays() -> None:
    installed = render("gpu").docs + example_docs()
    claims = {d["metadata"]["name"] for d in installed if d["kind"] == "PersistentVolumeClaim"}
    configmaps = {d["metadata"]["name"] for d in installed if d["kind"] == "ConfigMap"}
    for doc in example_docs():
        assert doc["metadata"]["namespace"] == NAMESPACE
        for pod in pod_templates(doc):
            for volume in pod.spec.get("volumes", []):
                if "persistentVolumeClaim" in volume:
                    assert volume["persistentVolumeClaim"]["claimName"] in claims, pod.where
                if "configMap" in volume:
                    assert volume["configMap"]["name"] in configmaps, pod.where


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secrets_are_optional_except_the_documented_ones(overlay: str) -> None:
    # No Secret is shipped: the operator creates the required ones (deploy/README.md says how); every
    # other secret reference must be optional so that a missing one does not block a pod.
    readme = (REPO_ROOT / "deploy" / "README.md").read_text(encoding="utf-8")
    required: set[str] = set()
    for doc in render(overlay).docs + example_docs():
        assert doc["kind"] != "Secret"
        for pod in pod_templates(doc):
            for volume in pod.spec.get("volumes", []):
                if "secret" in volume:
                    assert volume["secret"]["secretName"] == "moralscope-api-keys", pod.where
                    required.add(volume["secret"]["secretName"])
            for container in pod.spec["containers"]:
                for env in container.get("env", []):
                    ref = env.get("valueFrom", {}).get("secretKeyRef")
                    if ref is not None and ref.get("optional") is not True:
                        required.add(ref["name"])
    assert required == REQUIRED_SECRETS[overlay]
    for name in required:
        assert f"create secret generic {name}" in readme, f"deploy/README.md must say how to create {name}"


def _selects(selector: Doc, labels: dict[str, str]) -> bool:
    """Kubernetes label-selector semantics (matchLabels and the In/NotIn/Exists operators)."""
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        present = key in labels
        if not {
            "In": present and labels.get(key) in values,
            "NotIn": not present or labels.get(key) not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }[operator]:
            return False
    return True


def test_network_policy_fences_every_ray_pod_and_admits_every_moralscope_pod(rendering: Rendering) -> None:
    (policy,) = [
        p["spec"] for p in rendering.of_kind("NetworkPolicy") if p["metadata"]["name"] == "moralscope-ray-ingress"
    ]
    (peers,) = [rule["from"][0]["podSelector"] for rule in policy["ingress"] if "podSelector" in rule["from"][0]]
    for doc in rendering.docs + example_docs():
        for pod in pod_templates(doc):
            is_ray = pod.role in ("ray-head", "ray-worker")
            assert _selects(policy["podSelector"], pod.labels) == is_ray, f"{pod.where} fenced: {not is_ray}"
            assert _selects(peers, pod.labels), f"{pod.where} cannot reach the Ray pods"
