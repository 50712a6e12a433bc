"""Helpers of the deployment checks: rendered Kustomize overlays, the RayJob example, the Dockerfile.

Nothing here needs Docker or a cluster. Rendering needs ``kubectl`` (its built-in kustomize); ``make
check-deploy`` installs Debian's ``kubernetes-client`` when it is missing. The KubeRay CRDs are read from
``../shared/k8s-schemas/kuberay`` next to the repository, or from ``$K8S_SCHEMAS_DIR/kuberay``.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
K8S_DIR = REPO_ROOT / "deploy" / "k8s"
OVERLAYS = ("gpu", "cpu", "gpu-postgres")
"""Every overlay; its image flavour (``-gpu``/``-cpu`` tag) is the name's first word."""
RAYJOB_EXAMPLE = K8S_DIR / "examples" / "rayjob.yaml"
DOCKERFILE = REPO_ROOT / "Dockerfile"
NAMESPACE = "moralscope"
APP_UID = 10001
# kubectl 1.20's kustomize (Debian's kubernetes-client, used by CI) needs `bases:` and
# `patchesStrategicMerge:`; kustomize v5 warns about both.
TOLERATED_KUSTOMIZE_WARNINGS = (
    re.compile(r"^# Warning: 'bases' is deprecated\."),
    re.compile(r"^# Warning: 'patchesStrategicMerge' is deprecated\."),
)

Doc = dict[str, Any]


def kuberay_schema_dir() -> Path:
    base = os.environ.get("K8S_SCHEMAS_DIR") or str(REPO_ROOT.parent / "shared" / "k8s-schemas")
    return Path(base) / "kuberay"


@dataclass(frozen=True)
class Rendering:
    """What ``kubectl kustomize`` printed for one overlay."""

    docs: list[Doc]
    stderr: str

    def of_kind(self, kind: str) -> list[Doc]:
        return [d for d in self.docs if d["kind"] == kind]

    def one(self, kind: str) -> Doc:
        found = self.of_kind(kind)
        assert len(found) == 1, f"expected one {kind}, found {[d['metadata']['name'] for d in found]}"
        return found[0]


def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        pytest.fail(
            "kubectl not found: run `make check-deploy`, which installs Debian's kubernetes-client "
            "(apt-get install -y kubernetes-client)"
        )
    return path


@cache
def render(overlay: str) -> Rendering:
    proc = subprocess.run(
        [kubectl(), "kustomize", str(K8S_DIR / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, f"kubectl kustomize deploy/k8s/overlays/{overlay} failed:\n{proc.stderr}"
    return Rendering(docs=[d for d in yaml.safe_load_all(proc.stdout) if d], stderr=proc.stderr)


@cache
def example_docs() -> list[Doc]:
    return [d for d in yaml.safe_load_all(RAYJOB_EXAMPLE.read_text(encoding="utf-8")) if d]


# --- pod templates inside the objects we ship -------------------------------------------------------


@dataclass(frozen=True)
class PodTemplate:
    """A pod spec found in a Deployment, RayCluster or RayJob, with where it was found."""

    where: str
    template: Doc
    role: str  # api | ray-head | ray-worker | submitter | postgres

    @property
    def spec(self) -> Doc:
        return dict(self.template["spec"])

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.template.get("metadata", {}).get("labels", {}))

    claim_templates: tuple[Doc, ...] = ()
    """A StatefulSet's volumeClaimTemplates (volumes its pods mount besides ``spec.volumes``)."""


def pod_templates(doc: Doc) -> Iterator[PodTemplate]:
    kind, name = doc["kind"], doc["metadata"]["name"]
    if kind == "Deployment":
        yield PodTemplate(f"Deployment/{name}", doc["spec"]["template"], "api")
    elif kind == "StatefulSet":
        claims = tuple(doc["spec"].get("volumeClaimTemplates", []))
        yield PodTemplate(f"StatefulSet/{name}", doc["spec"]["template"], "postgres", claims)
    elif kind in ("RayCluster", "RayJob"):
        cluster = doc["spec"] if kind == "RayCluster" else doc["spec"].get("rayClusterSpec", {})
        if "headGroupSpec" in cluster:
            yield PodTemplate(f"{kind}/{name} head", cluster["headGroupSpec"]["template"], "ray-head")
        for group in cluster.get("workerGroupSpecs", []):
            yield PodTemplate(f"{kind}/{name} group {group['groupName']}", group["template"], "ray-worker")
        if kind == "RayJob" and "submitterPodTemplate" in doc["spec"]:
            yield PodTemplate(f"RayJob/{name} submitter", doc["spec"]["submitterPodTemplate"], "submitter")


def flavour(overlay: str) -> str:
    """``gpu`` or ``cpu``: which image an overlay runs."""
    return overlay.split("-")[0]


def ray_clusters(docs: list[Doc]) -> Iterator[tuple[str, Doc]]:
    """(label, RayCluster spec) of every RayCluster and every RayJob's embedded cluster."""
    for doc in docs:
        if doc["kind"] == "RayCluster":
            yield f"RayCluster/{doc['metadata']['name']}", doc["spec"]
        elif doc["kind"] == "RayJob" and "rayClusterSpec" in doc["spec"]:
            yield f"RayJob/{doc['metadata']['name']}", doc["spec"]["rayClusterSpec"]


def all_shipped_docs() -> list[tuple[str, Doc]]:
    """Every object of every overlay and of the example, labelled by where it comes from."""
    shipped = [(f"overlays/{o}", d) for o in OVERLAYS for d in render(o).docs]
    return shipped + [("examples/rayjob.yaml", d) for d in example_docs()]


# --- the Dockerfile -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    stage: str | None
    line: int


@dataclass
class Dockerfile:
    instructions: list[Instruction]
    stage_bases: dict[str, str] = field(default_factory=dict)

    def in_stage(self, stage: str, keyword: str | None = None) -> list[Instruction]:
        return [i for i in self.instructions if i.stage == stage and (keyword is None or i.keyword == keyword)]

    def arg_default(self, name: str) -> str:
        """The default of ``ARG name``; every stage that declares it must agree."""
        defaults = {
            instr.args.split("=", 1)[1]
            for instr in self.instructions
            if instr.keyword == "ARG" and "=" in instr.args and instr.args.split("=", 1)[0] == name
        }
        assert len(defaults) == 1, f"Dockerfile ARG {name}: expected one default, found {sorted(defaults)}"
        return defaults.pop()

    def env(self) -> dict[str, str]:
        """Every ENV key in any stage, with its last value."""
        values: dict[str, str] = {}
        for instr in self.instructions:
            if instr.keyword == "ENV":
                for token in shlex.split(instr.args):
                    key, _, value = token.partition("=")
                    values[key] = value
        return values


@cache
def dockerfile() -> Dockerfile:
    """The Dockerfile as instructions (continuation lines joined, comments dropped), each with its stage."""
    instructions: list[Instruction] = []
    bases: dict[str, str] = {}
    stage: str | None = None
    pending, start = "", 0
    for number, raw in enumerate(DOCKERFILE.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        text = pending + line
        pending = ""
        keyword, _, args = text.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = args.split()
            stage = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            if stage:
                bases[stage] = words[0]
        instructions.append(Instruction(keyword, args.strip(), stage, start))
    return Dockerfile(instructions, bases)
