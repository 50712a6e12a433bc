"""Where each overlay keeps its state: the cpu overlay one SQLite replica on a volume; the gpu overlays
stateless API replicas on PostgreSQL and an object store, with a PodDisruptionBudget; the gpu-postgres
overlay's in-cluster database wired to the API's store URL."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from deploy_support import Doc, Rendering, dockerfile, render

GPU_OVERLAYS = ("gpu", "gpu-postgres")


def _api(rendering: Rendering) -> tuple[Doc, Doc]:
    deployment = rendering.one("Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return deployment, container


def _env(container: Doc) -> dict[str, Doc]:
    return {e["name"]: e for e in container.get("env", [])}


def _selects(selector: Doc, labels: dict[str, str]) -> bool:
    return bool(selector["matchLabels"].items() <= labels.items())


def test_cpu_overlay_runs_one_sqlite_replica_on_its_state_volume() -> None:
    rendering = render("cpu")
    deployment, container = _api(rendering)
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"  # the new pod needs the volume
    settings = rendering.one("ConfigMap")["data"]
    assert "MORALSCOPE_STORE_URL" not in settings
    assert "MORALSCOPE_STORE_URL" not in _env(container)
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    store_dir = settings["MORALSCOPE_STORE_PATH"].rsplit("/", 1)[0]
    assert settings["MORALSCOPE_RESULTS_URI"].startswith(store_dir)
    volume = next(v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == mounts[store_dir])
    claim = next(
        d
        for d in rendering.of_kind("PersistentVolumeClaim")
        if d["metadata"]["name"] == volume["persistentVolumeClaim"]["claimName"]
    )
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert not rendering.of_kind("PodDisruptionBudget")


@pytest.mark.parametrize("overlay", GPU_OVERLAYS)
def test_gpu_overlays_run_stateless_replicas_on_postgres_and_an_object_store(overlay: str) -> None:
    rendering = render(overlay)
    deployment, container = _api(rendering)
    spec = deployment["spec"]
    assert spec["replicas"] >= 2
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    # no volume for state: the only claim the API mounts is the shared model cache
    claims = [v for v in spec["template"]["spec"]["volumes"] if "persistentVolumeClaim" in v]
    assert [v["persistentVolumeClaim"]["claimName"] for v in claims] == ["moralscope-model-cache"]
    mounted = {m["mountPath"] for m in container["volumeMounts"]}
    assert not any(path.startswith("/var/lib/moralscope/state") for path in mounted)
    store = _env(container)["MORALSCOPE_STORE_URL"]
    if "value" in store:
        assert store["value"].startswith("postgresql://")
        assert "@" in store["value"]
        assert ":" not in urlsplit(store["value"]).netloc.split("@")[0], "no password in a manifest"
    else:
        assert store["valueFrom"]["secretKeyRef"]["name"] == "moralscope-store"
    results = rendering.one("ConfigMap")["data"]["MORALSCOPE_RESULTS_URI"]
    assert results.startswith("s3://")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert _env(container)[name]["valueFrom"]["secretKeyRef"]["name"] == "moralscope-s3"
    # a drain or a cluster upgrade keeps a replica serving
    (budget,) = rendering.of_kind("PodDisruptionBudget")
    assert 1 <= budget["spec"]["minAvailable"] < spec["replicas"]
    assert _selects(budget["spec"]["selector"], spec["template"]["metadata"]["labels"])
    # a replica that shuts down hands its jobs over before it is killed
    assert spec["template"]["spec"]["terminationGracePeriodSeconds"] >= 30


def test_in_cluster_postgres_is_the_one_the_api_connects_to() -> None:
    rendering = render("gpu-postgres")
    _, container = _api(rendering)
    url = urlsplit(_env(container)["MORALSCOPE_STORE_URL"]["value"])
    (database,) = rendering.of_kind("StatefulSet")
    (server,) = database["spec"]["template"]["spec"]["containers"]
    server_env = _env(server)
    (service,) = [d for d in rendering.of_kind("Service") if d["metadata"]["name"] == url.hostname]
    assert database["spec"]["serviceName"] == service["metadata"]["name"]
    assert _selects({"matchLabels": service["spec"]["selector"]}, database["spec"]["template"]["metadata"]["labels"])
    (port,) = service["spec"]["ports"]
    assert (
        url.port == port["port"] == next(p["containerPort"] for p in server["ports"] if p["name"] == port["targetPort"])
    )
    assert url.username == server_env["POSTGRES_USER"]["value"]
    assert url.path.lstrip("/") == server_env["POSTGRES_DB"]["value"]
    password = _env(container)["PGPASSWORD"]["valueFrom"]["secretKeyRef"]
    assert password == server_env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert server_env["PGDATA"]["value"].startswith(
        next(m["mountPath"] for m in server["volumeMounts"] if m["name"] == "data") + "/"
    )
    (policy,) = [
        p for p in rendering.of_kind("NetworkPolicy") if p["metadata"]["name"] == "moralscope-postgres-ingress"
    ]
    assert _selects(policy["spec"]["podSelector"], database["spec"]["template"]["metadata"]["labels"])
    (rule,) = policy["spec"]["ingress"]
    assert _selects(
        rule["from"][0]["podSelector"], rendering.one("Deployment")["spec"]["template"]["metadata"]["labels"]
    )
    assert [p["port"] for p in rule["ports"]] == [port["port"]]


def test_the_image_can_reach_postgresql() -> None:
    # psycopg comes with the server extra (its binary wheel carries libpq): no system package needed
    installs = " ".join(i.args for i in dockerfile().instructions if i.keyword == "RUN")
    assert '"./[server,cpu]"' in installs
    assert '"./[server,gpu]"' in installs
    assert installs.count("psycopg, psycopg_pool") == 2  # both builds prove it imports
