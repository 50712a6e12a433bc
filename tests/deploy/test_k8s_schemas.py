"""Every shipped object validates: built-in kinds against the Kubernetes OpenAPI schemas
(kubernetes-validate, strict: unknown fields are errors), KubeRay kinds against the CRDs' openAPIV3Schema.

A RayCluster field the CRD does not know would be pruned silently by the API server, so the CRD
schemas are made strict here too (``additionalProperties: false`` wherever the CRD lists properties and
does not preserve unknown fields), which is what ``kubectl apply``'s server-side field validation does.
"""

from __future__ import annotations

import copy
import hashlib
from functools import cache
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from deploy_support import Doc, all_shipped_docs, kuberay_schema_dir

# The oldest Kubernetes these manifests claim to support (deploy/README.md) and the newest the
# kubernetes-validate release ships.
KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
CRD_FILES = {"RayCluster": "ray.io_rayclusters.yaml", "RayJob": "ray.io_rayjobs.yaml"}


def _label(source: str, doc: Doc) -> str:
    return f"{source}:{doc['kind']}/{doc['metadata']['name']}"


BUILTIN = [pytest.param(d, id=_label(s, d)) for s, d in all_shipped_docs() if d["kind"] not in CRD_FILES]
CUSTOM = [pytest.param(d, id=_label(s, d)) for s, d in all_shipped_docs() if d["kind"] in CRD_FILES]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("doc", BUILTIN)
def test_builtin_objects_validate_strictly(doc: Doc, version: str) -> None:
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(str(p) for p in exc.path)
        pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} at {path or '<root>'}: {exc.message} (k8s {version})")


def _strict(schema: Any) -> Any:
    if isinstance(schema, dict):
        schema = {key: _strict(value) for key, value in schema.items()}
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    return schema


@cache
def crd_validator(kind: str) -> jsonschema.protocols.Validator:
    # libyaml's loader when present: the CRDs are megabytes of YAML.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    crd = yaml.load((kuberay_schema_dir() / CRD_FILES[kind]).read_text(encoding="utf-8"), Loader=loader)
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schema = _strict(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
    # metadata is validated by the API server itself; the CRD only says "object".
    schema["properties"]["metadata"] = {"type": "object"}
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def test_crd_files_are_the_pinned_ones() -> None:
    directory = kuberay_schema_dir()
    lines = (directory / "SHA256SUMS").read_text(encoding="utf-8").split("\n")
    sums = {name: digest for digest, name in (line.split() for line in lines if line.strip())}
    for filename in CRD_FILES.values():
        assert hashlib.sha256((directory / filename).read_bytes()).hexdigest() == sums[filename], filename


@pytest.mark.parametrize("doc", CUSTOM)
def test_kuberay_objects_validate_against_their_crd(doc: Doc) -> None:
    assert doc["apiVersion"] == "ray.io/v1"
    errors = sorted(crd_validator(doc["kind"]).iter_errors(doc), key=lambda e: list(e.absolute_path))
    messages = [f"{'.'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}" for e in errors]
    assert messages == []


def test_strict_crd_schema_rejects_a_misspelt_field() -> None:
    # The check above can fail: a typo in a worker group is an error, not a silently pruned field.
    (cluster,) = [d for _, d in all_shipped_docs() if d["kind"] == "RayCluster"][:1]
    broken = copy.deepcopy(cluster)
    broken["spec"]["workerGroupSpecs"][0]["maxReplica"] = 3
    assert not crd_validator("RayCluster").is_valid(broken)
