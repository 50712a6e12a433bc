"""Reading job specs from YAML or JSON files (YAML is a superset of JSON), and the local data files they name.

A custom benchmark's ``data`` written as a relative path is relative to the spec file that names it
(:func:`load_job_spec` makes it absolute); the SDK uploads such local files when it submits a spec
(:func:`local_data_files`, :func:`with_uploaded_data`).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from schemas.custom import UPLOAD_SCHEME
from schemas.errors import InvalidInputError
from schemas.spec import JobSpec
from schemas.uploads import UploadView


def read_spec_data(path: str | Path) -> dict[str, Any]:
    """The raw mapping of a spec file, with clear errors for unreadable or non-mapping files."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInputError(f"cannot read job spec {path}: {exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidInputError(f"{path} is not valid YAML or JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidInputError(f"{path} must hold a mapping (the job spec), got {type(data).__name__}")
    return data


def _custom_entries(body: dict[str, Any]) -> list[Any]:
    benchmarks = body.get("benchmarks")
    custom = benchmarks.get("custom") if isinstance(benchmarks, dict) else None
    return custom if isinstance(custom, list) else []


def local_data_files(body: dict[str, Any], base: Path) -> dict[int, Path]:
    """Custom benchmarks of a raw spec whose ``data`` is a file on this machine: entry index → its path.

    Relative paths are taken from ``base`` (the spec file's folder); URIs and upload references are not files.
    """
    found: dict[int, Path] = {}
    for index, entry in enumerate(_custom_entries(body)):
        data = entry.get("data") if isinstance(entry, dict) else None
        if not isinstance(data, str) or data.startswith(UPLOAD_SCHEME) or "://" in data:
            continue
        path = base / Path(data).expanduser()
        if path.is_file():
            found[index] = path.resolve()
    return found


def with_data(body: dict[str, Any], data: dict[int, str], sha256: dict[int, str] | None = None) -> dict[str, Any]:
    """A copy of the raw spec with the ``data`` (and, where the spec gives none, ``sha256``) of entries replaced."""
    copied = copy.deepcopy(body)
    entries = _custom_entries(copied)
    for index, value in data.items():
        entries[index]["data"] = value
        if sha256 and index in sha256:
            entries[index].setdefault("sha256", sha256[index])
    return copied


def with_uploaded_data(body: dict[str, Any], uploads: dict[int, UploadView]) -> dict[str, Any]:
    """The raw spec naming each uploaded file by its reference (and pinning its sha256 unless the spec does)."""
    return with_data(body, {i: u.ref for i, u in uploads.items()}, {i: u.sha256 for i, u in uploads.items()})


def load_job_spec(source: str | Path | dict[str, Any] | JobSpec) -> JobSpec:
    """A validated JobSpec from a spec, a dict, or a YAML/JSON file path (its local data paths made absolute)."""
    if isinstance(source, JobSpec):
        return source
    if isinstance(source, dict):
        return JobSpec.model_validate(source)
    data = read_spec_data(source)
    local = local_data_files(data, Path(source).parent)
    return JobSpec.model_validate(with_data(data, {i: str(path) for i, path in local.items()}))
