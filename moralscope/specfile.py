"""Reading job specs from YAML or JSON files (YAML is a superset of JSON)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from schemas.errors import InvalidInputError
from schemas.spec import JobSpec


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


def load_job_spec(source: str | Path | dict[str, Any] | JobSpec) -> JobSpec:
    """A validated JobSpec from a spec, a dict, or a YAML/JSON file path."""
    if isinstance(source, JobSpec):
        return source
    data = source if isinstance(source, dict) else read_spec_data(source)
    return JobSpec.model_validate(data)
