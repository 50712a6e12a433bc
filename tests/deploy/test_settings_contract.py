"""The deployment speaks the application's language: every MORALSCOPE_* variable that the manifests or
the image set is a field of ``service.settings.Settings`` with a value it accepts, paths point into
volumes, and every command the image or a manifest runs is a ``moralscope`` CLI command with those options.
"""

from __future__ import annotations

import importlib
import importlib.util
import shlex
import warnings
from pathlib import PurePosixPath

import click
import pytest
from click.testing import CliRunner
from deploy_support import OVERLAYS, Doc, Rendering, all_shipped_docs, dockerfile, pod_templates, render

from moralscope.cli import COMMANDS, cli
from service.settings import Settings

PREFIX = "MORALSCOPE_"
# Variables of other tools that the image or manifests may set, and why.
THIRD_PARTY_ENV = {
    "RAY_ADDRESS": "Ray's own cluster address (Settings.effective_ray_address falls back to it)",
    "HF_HOME": "Hugging Face cache root",
    "HF_TOKEN": "Hugging Face token for gated models (optional Secret)",
    "HF_HUB_DISABLE_TELEMETRY": "no Hugging Face telemetry",
    "RAY_USAGE_STATS_ENABLED": "no Ray usage statistics",
    "VLLM_NO_USAGE_STATS": "no vLLM usage statistics",
    "TOKENIZERS_PARALLELISM": "quiet Hugging Face tokenizers in forked Ray workers",
    "OMP_WAIT_POLICY": "OpenMP threads sleep instead of spinning (torch on shared CPUs)",
    "NVIDIA_DRIVER_CAPABILITIES": "what the NVIDIA container toolkit mounts into the GPU image",
    "PATH": "the virtualenv first",
    "VIRTUAL_ENV": "the virtualenv",
    "HOME": "the image user's home (a writable volume in pods)",
    "PYTHONDONTWRITEBYTECODE": "read-only root filesystem",
    "PYTHONUNBUFFERED": "logs reach kubectl logs at once",
    "PIP_DISABLE_PIP_VERSION_CHECK": "builder stage only",
    "AWS_REGION": "the results bucket's region (pyarrow's S3 client)",
    "AWS_ENDPOINT_URL": "an S3-compatible store's endpoint (service.filesystems)",
    "AWS_ACCESS_KEY_ID": "S3 credentials (optional Secret moralscope-s3)",
    "AWS_SECRET_ACCESS_KEY": "S3 credentials (optional Secret moralscope-s3)",
    "PGPASSWORD": "the in-cluster PostgreSQL's password, read by libpq (Secret moralscope-postgres)",
    "POSTGRES_USER": "the in-cluster PostgreSQL image: its user",
    "POSTGRES_DB": "the in-cluster PostgreSQL image: its database",
    "POSTGRES_PASSWORD": "the in-cluster PostgreSQL image: its password (Secret moralscope-postgres)",
    "PGDATA": "the in-cluster PostgreSQL image: its data folder on the volume",
}
PATH_SETTINGS = ("MORALSCOPE_CACHE_DIR", "MORALSCOPE_STORE_PATH", "MORALSCOPE_RESULTS_URI", "HF_HOME")


def _container_env(doc: Doc) -> dict[str, str]:
    names: dict[str, str] = {}
    for pod in pod_templates(doc):
        for container in pod.spec["containers"] + pod.spec.get("initContainers", []):
            names |= {env["name"]: env.get("value", "") for env in container.get("env", [])}
    return names


def _env_sources() -> list[tuple[str, str]]:
    """(variable, where it is set) for every variable set anywhere we ship."""
    found = [(name, "Dockerfile ENV") for name in dockerfile().env()]
    for source, doc in all_shipped_docs():
        found += [(name, f"{source} {doc['kind']}") for name in _container_env(doc)]
        if doc["kind"] == "ConfigMap" and doc["metadata"]["name"].startswith("moralscope-settings"):
            found += [(name, f"{source} ConfigMap") for name in doc["data"]]
        if doc["kind"] == "RayCluster":
            found += [(e["name"], f"{source} autoscaler") for e in doc["spec"]["autoscalerOptions"].get("env", [])]
    return found


def test_every_variable_is_a_setting_or_a_known_third_party_one() -> None:
    fields = {PREFIX + name.upper() for name in Settings.model_fields}
    unknown = sorted(
        f"{name} ({where})"
        for name, where in _env_sources()
        if (name.startswith(PREFIX) and name not in fields)
        or (not name.startswith(PREFIX) and name not in THIRD_PARTY_ENV)
    )
    assert unknown == [], f"not a Settings field nor an allowed third-party variable: {unknown}"


def _api_environment(rendering: Rendering) -> dict[str, str]:
    """What the API container sees: the image's ENV, the settings ConfigMap, then its own env (a value
    from a Secret stands as ``<secret>``)."""
    environment = dict(dockerfile().env())
    environment |= rendering.one("ConfigMap")["data"]
    (container,) = rendering.one("Deployment")["spec"]["template"]["spec"]["containers"]
    environment |= {e["name"]: e.get("value", "<secret>") for e in container.get("env", [])}
    return environment


def test_api_settings_parse(rendering: Rendering, monkeypatch: pytest.MonkeyPatch) -> None:
    environment = _api_environment(rendering)
    for name in list(Settings.model_fields):
        monkeypatch.delenv(PREFIX + name.upper(), raising=False)
    for name, value in environment.items():
        if name.startswith(PREFIX) and value != "<secret>":
            monkeypatch.setenv(name, value)
    settings = Settings(_env_file=None)
    assert settings.effective_ray_address == environment["MORALSCOPE_RAY_ADDRESS"]
    assert settings.allow_unauthenticated_remote is False
    assert settings.api_keys_file is not None


def _mounts(rendering: Rendering) -> dict[str, bool]:
    (container,) = rendering.one("Deployment")["spec"]["template"]["spec"]["containers"]
    return {m["mountPath"]: bool(m.get("readOnly")) for m in container["volumeMounts"]}


def _mount_of(path: str, mounts: dict[str, bool]) -> str | None:
    candidates = [m for m in mounts if PurePosixPath(path).is_relative_to(m)]
    return max(candidates, key=len) if candidates else None


def test_api_paths_point_into_volumes(rendering: Rendering) -> None:
    # The root filesystem is read-only: whatever the server writes must be on a writable volume.
    environment, mounts = _api_environment(rendering), _mounts(rendering)
    for name in PATH_SETTINGS:
        value = environment[name]
        if "://" in value:
            continue  # an object store
        if name == "MORALSCOPE_STORE_PATH" and "MORALSCOPE_STORE_URL" in environment:
            continue  # the store is the database the URL names
        mount = _mount_of(value, mounts)
        assert mount is not None, f"{name}={value} is on the read-only root filesystem"
        assert not mounts[mount], f"{name}={value} is on a read-only volume"
    keys_mount = _mount_of(environment["MORALSCOPE_API_KEYS_FILE"], mounts)
    assert keys_mount is not None, "MORALSCOPE_API_KEYS_FILE is not in a mounted volume"
    assert mounts[keys_mount], "the API keys file must come from the read-only Secret mount"


# --- commands --------------------------------------------------------------------------------------


def _commands_run() -> list[tuple[list[str], str]]:
    """(argv after `moralscope`, where) of every command the image or a manifest runs."""
    image = dockerfile()
    (entrypoint,) = [i.args for i in image.in_stage("runtime", "ENTRYPOINT")]
    (cmd,) = [i.args for i in image.in_stage("runtime", "CMD")]
    assert entrypoint == '["moralscope"]'
    runs = [(shlex.split(cmd.strip("[]").replace(",", " ")), "Dockerfile CMD")]
    for instr in image.instructions:
        if instr.keyword == "RUN" and "moralscope models" in instr.args:
            argv = shlex.split(instr.args.split("moralscope ", 1)[1])
            runs.append((argv, f"Dockerfile line {instr.line}"))
    for overlay in OVERLAYS:
        (container,) = render(overlay).one("Deployment")["spec"]["template"]["spec"]["containers"]
        assert "command" not in container, "the Deployment relies on the image's ENTRYPOINT"
        runs.append((list(container["args"]), f"overlays/{overlay} Deployment"))
    for source, doc in all_shipped_docs():
        if doc["kind"] == "RayJob":
            program, *argv = shlex.split(doc["spec"]["entrypoint"])
            assert program == "moralscope", source
            runs.append((argv, f"{source} RayJob entrypoint"))
    return runs


def _resolve(argv: list[str]) -> tuple[click.Command | None, list[str]]:
    """The click command argv names (None while its module is not written yet) and its own options."""
    name = argv[0]
    assert name in COMMANDS, f"`moralscope {name}` is not a CLI command (moralscope.cli.COMMANDS)"
    module = COMMANDS[name].split(":")[0]
    if importlib.util.find_spec(module) is None:
        warnings.warn(f"{module} does not exist yet: only checked that `{name}` is in COMMANDS", stacklevel=2)
        return None, []
    command: click.Command = getattr(importlib.import_module(module), COMMANDS[name].split(":")[1])
    path, rest = [name], argv[1:]
    while isinstance(command, click.Group) and rest and not rest[0].startswith("-"):
        sub = command.get_command(click.Context(command), rest[0])
        assert sub is not None, f"`moralscope {' '.join([*path, rest[0]])}` does not exist"
        command, path, rest = sub, [*path, rest[0]], rest[1:]
    return command, [*path, "--help"]


@pytest.mark.parametrize(("argv", "where"), _commands_run(), ids=[w for _, w in _commands_run()])
def test_commands_exist_with_the_options_used(argv: list[str], where: str) -> None:
    command, help_argv = _resolve(argv)
    if command is None:
        return
    result = CliRunner().invoke(cli, help_argv)
    assert result.exit_code == 0, f"{where}: `moralscope {' '.join(help_argv)}` failed:\n{result.output}"
    options = {opt for param in command.params for opt in param.opts if opt.startswith("-")}
    used = {arg.split("=", 1)[0] for arg in argv if arg.startswith("--")}
    assert used <= options, f"{where}: {sorted(used - options)} are not options of `moralscope {argv[0]}`"
