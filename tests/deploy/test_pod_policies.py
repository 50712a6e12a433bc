"""Pod-level policies of every shipped pod: non-root and locked down, sized, probed, placed on the right nodes."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from deploy_support import (
    APP_UID,
    OVERLAYS,
    REPO_ROOT,
    Doc,
    PodTemplate,
    Rendering,
    all_shipped_docs,
    dockerfile,
    example_docs,
    pod_templates,
    ray_clusters,
    render,
)

from schemas.spec import JobSpec

GPU = "nvidia.com/gpu"
# Written at run time besides the model cache: /tmp (Ray's session directory, torch.compile) and the
# image user's $HOME (vLLM, Triton and numba kernel caches). PostgreSQL writes its data volume, its
# socket folder and /tmp.
WRITABLE_PATHS = ("/tmp", "/home/moralscope")
POSTGRES_WRITABLE_PATHS = ("/tmp", "/var/run/postgresql", "/var/lib/postgresql/data")

PODS = [pytest.param(p, id=f"{src}:{p.where}") for src, d in all_shipped_docs() for p in pod_templates(d)]


def _containers(pod: PodTemplate) -> list[Doc]:
    return list(pod.spec["containers"]) + list(pod.spec.get("initContainers", []))


def _assert_locked_down(where: str, context: dict[str, Any]) -> None:
    assert context.get("allowPrivilegeEscalation") is False, where
    assert context.get("readOnlyRootFilesystem") is True, where
    assert context.get("runAsNonRoot") is True, where
    assert context.get("capabilities", {}).get("drop") == ["ALL"], where


@pytest.mark.parametrize("pod", PODS)
def test_pods_run_as_the_images_non_root_user(pod: PodTemplate) -> None:
    security = pod.spec["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] == security["runAsGroup"] == APP_UID
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}


def test_images_run_as_the_uid_the_pods_use() -> None:
    # Files baked into the image (the venv, the prepared model) belong to this UID.
    for stage in ("gpu", "cpu"):
        assert [u.args for u in dockerfile().in_stage(stage, "USER")] == [f"{APP_UID}:{APP_UID}"]


@pytest.mark.parametrize("pod", PODS)
def test_containers_are_locked_down_and_sized(pod: PodTemplate) -> None:
    assert pod.spec.get("enableServiceLinks") is False, pod.where
    for container in _containers(pod):
        where = f"{pod.where} container {container['name']}"
        _assert_locked_down(where, container["securityContext"])
        resources = container["resources"]
        for bound in ("requests", "limits"):
            assert {"cpu", "memory"} <= resources[bound].keys(), f"{where}: {bound}"


@pytest.mark.parametrize("pod", PODS)
def test_read_only_root_leaves_the_runtime_caches_writable(pod: PodTemplate) -> None:
    volumes = {v["name"]: v for v in pod.spec.get("volumes", [])}
    volumes |= {c["metadata"]["name"]: c for c in pod.claim_templates}
    for container in _containers(pod):
        mounts = {m["mountPath"]: m for m in container.get("volumeMounts", [])}
        for path in POSTGRES_WRITABLE_PATHS if pod.role == "postgres" else WRITABLE_PATHS:
            assert path in mounts, f"{pod.where}: nothing mounted at {path}"
            assert not mounts[path].get("readOnly"), f"{pod.where}: {path} is mounted read-only"
        for mount in mounts.values():
            assert mount["name"] in volumes, f"{pod.where}: mount of undefined volume {mount['name']}"
        if pod.role not in ("submitter", "postgres"):
            # Ray pods and the API resolve models and datasets into the cache the image points at.
            assert dockerfile().env()["MORALSCOPE_CACHE_DIR"] in mounts, pod.where


def test_ray_autoscalers_are_locked_down_and_mount_their_volumes() -> None:
    for label, cluster in ray_clusters([d for _, d in all_shipped_docs()]):
        if not cluster.get("enableInTreeAutoscaling"):
            continue
        options = cluster["autoscalerOptions"]
        _assert_locked_down(f"{label} autoscaler", options["securityContext"])
        head_volumes = {v["name"] for v in cluster["headGroupSpec"]["template"]["spec"]["volumes"]}
        assert {m["mountPath"] for m in options["volumeMounts"]} >= set(WRITABLE_PATHS)
        assert {m["name"] for m in options["volumeMounts"]} <= head_volumes
        assert {"cpu", "memory"} <= options["resources"]["limits"].keys()


def test_ray_version_matches_the_image_and_gets_http_probes() -> None:
    # The image has no wget: KubeRay's probes must be its HTTP ones, used from Ray 2.53 on.
    image_ray = dockerfile().arg_default("RAY_VERSION")
    for label, cluster in ray_clusters([d for _, d in all_shipped_docs()]):
        assert cluster["rayVersion"] == image_ray, label
        assert tuple(int(p) for p in cluster["rayVersion"].split(".")) >= (2, 53, 0), label


def test_standalone_ray_clusters_follow_image_upgrades(rendering: Rendering) -> None:
    assert rendering.one("RayCluster")["spec"]["upgradeStrategy"] == {"type": "Recreate"}


def _gpus(container: Doc, bound: str) -> int:
    return int(container["resources"][bound].get(GPU, 0))


def test_gpu_overlay_places_gpu_workers_on_gpu_nodes() -> None:
    cluster = render("gpu").one("RayCluster")["spec"]
    assert cluster["enableInTreeAutoscaling"] is True
    head = cluster["headGroupSpec"]["template"]["spec"]
    assert _gpus(head["containers"][0], "limits") == 0
    for group in cluster["workerGroupSpecs"]:
        spec = group["template"]["spec"]
        (worker,) = spec["containers"]
        assert _gpus(worker, "limits") >= 1, group["groupName"]
        assert _gpus(worker, "requests") == _gpus(worker, "limits"), group["groupName"]
        assert spec["nodeSelector"], group["groupName"]
        assert any(t["key"] == GPU and t["operator"] == "Exists" for t in spec["tolerations"]), group["groupName"]
        assert 0 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        assert group["maxReplicas"] >= 1


def test_cpu_overlay_asks_for_no_gpu_anywhere() -> None:
    rendering = render("cpu")
    assert GPU not in yaml.safe_dump_all(rendering.docs)
    cluster = rendering.one("RayCluster")["spec"]
    for group in cluster["workerGroupSpecs"]:
        assert "tolerations" not in group["template"]["spec"]
        assert "nodeSelector" not in group["template"]["spec"]
        assert 1 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]


def test_api_probes(rendering: Rendering) -> None:
    deployment = rendering.one("Deployment")["spec"]
    (container,) = deployment["template"]["spec"]["containers"]
    (port,) = container["ports"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port["name"]}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port["name"]}
    exposed = [i.args for i in dockerfile().in_stage("runtime", "EXPOSE")]
    assert exposed == [str(port["containerPort"])] == ["8000"]


def _cache_claim(pod: PodTemplate) -> str | None:
    """The PVC mounted at the image's MORALSCOPE_CACHE_DIR in the pod's main container."""
    cache_dir = dockerfile().env()["MORALSCOPE_CACHE_DIR"]
    mount = next(m for m in pod.spec["containers"][0]["volumeMounts"] if m["mountPath"] == cache_dir)
    volume = next(v for v in pod.spec["volumes"] if v["name"] == mount["name"])
    claim = volume.get("persistentVolumeClaim", {}).get("claimName")
    return str(claim) if claim else None


def _co_located_with_api(pod: PodTemplate) -> bool:
    terms = (
        pod.spec.get("affinity", {}).get("podAffinity", {}).get("requiredDuringSchedulingIgnoredDuringExecution", [])
    )
    return any(
        t["topologyKey"] == "kubernetes.io/hostname"
        and t["labelSelector"]["matchLabels"].get("app.kubernetes.io/component") == "api"
        for t in terms
    )


def _driver_and_ray_pods(source: str) -> tuple[PodTemplate, list[PodTemplate], list[Doc]]:
    """The pod where the runner resolves models (API pod, or a RayJob's head), the Ray pods, all objects."""
    if source == "rayjob":
        docs = example_docs() + render("gpu").docs
        (rayjob,) = [d for d in example_docs() if d["kind"] == "RayJob"]
        pods = [p for p in pod_templates(rayjob) if p.role != "submitter"]
        driver = next(p for p in pods if p.role == "ray-head")
    else:
        docs = render(source).docs
        pods = [p for d in docs for p in pod_templates(d) if p.role != "postgres"]
        driver = next(p for p in pods if p.role == "api")
    return driver, [p for p in pods if p is not driver], docs


@pytest.mark.parametrize("source", [*OVERLAYS, "rayjob"])
def test_every_pod_sees_the_model_cache_of_the_resolving_driver(source: str) -> None:
    # The runner resolves (downloads, converts) a model where it runs and its actors load it from that
    # path: the driver and every Ray pod must mount one cache at the same path.
    driver, ray_pods, docs = _driver_and_ray_pods(source)
    claim = _cache_claim(driver)
    assert claim is not None, f"{driver.where}: the model cache must be a PersistentVolumeClaim"
    pvc = next(d for d in docs if d["kind"] == "PersistentVolumeClaim" and d["metadata"]["name"] == claim)
    assert ray_pods
    for pod in ray_pods:
        assert _cache_claim(pod) == claim, pod.where
        if pvc["spec"]["accessModes"] != ["ReadWriteMany"]:
            assert _co_located_with_api(pod), f"{pod.where}: a ReadWriteOnce cache needs the pod on the API's node"


def test_example_rayjob_spec_is_a_valid_job_that_fits_its_cluster() -> None:
    docs = {d["kind"]: d for d in example_docs()}
    rayjob = docs["RayJob"]["spec"]
    argv = rayjob["entrypoint"].split()
    head = rayjob["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    mount = next(m for m in head["containers"][0]["volumeMounts"] if argv[2].startswith(m["mountPath"] + "/"))
    volume = next(v for v in head["volumes"] if v["name"] == mount["name"])
    assert volume["configMap"]["name"] == docs["ConfigMap"]["metadata"]["name"]
    spec = JobSpec.model_validate(yaml.safe_load(docs["ConfigMap"]["data"][argv[2].rsplit("/", 1)[1]]))
    (group,) = rayjob["rayClusterSpec"]["workerGroupSpecs"]
    (worker,) = group["template"]["spec"]["containers"]
    gpus_per_pod, cpus_per_pod = _gpus(worker, "limits"), float(worker["resources"]["limits"]["cpu"])
    for model in spec.models:
        assert model.gpus_per_actor <= gpus_per_pod, model.name
        assert model.cpus_per_actor <= cpus_per_pod, model.name
        assert model.num_actors * model.gpus_per_actor <= gpus_per_pod * group["minReplicas"], model.name


def test_gpu_overlay_can_host_every_model_of_the_paper_sweep() -> None:
    # deploy/README.md submits examples/paper-sweep.yaml to this overlay: each actor must fit a pod of
    # some worker group (tensor-parallel actors need all their GPUs on one node), within maxReplicas.
    spec = JobSpec.model_validate(yaml.safe_load((REPO_ROOT / "examples" / "paper-sweep.yaml").read_text("utf-8")))
    groups = render("gpu").one("RayCluster")["spec"]["workerGroupSpecs"]
    for model in spec.models:
        fitting = []
        for group in groups:
            (worker,) = group["template"]["spec"]["containers"]
            gpus, cpus = _gpus(worker, "limits"), float(worker["resources"]["limits"]["cpu"])
            if model.gpus_per_actor <= gpus and model.cpus_per_actor <= cpus:
                per_pod = int(
                    min(gpus // model.gpus_per_actor if model.gpus_per_actor else cpus, cpus // model.cpus_per_actor)
                )
                fitting.append(per_pod * group["maxReplicas"])
        assert max(fitting, default=0) >= model.num_actors, f"{model.name}: no worker group can host its actors"
