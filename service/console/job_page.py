"""What the job page shows, gathered from the service layer: the view, its downloads, its log.

Fields of :class:`~schemas.jobs.JobView` and :class:`~schemas.jobs.ModelProgress` that the page does
not lay out by hand are still shown, generically (a model field becomes a column of the models table,
a job field a row of "More about this job"), so the page keeps up as the views gain fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from schemas.jobs import JobView, ModelProgress
from service import jobs
from service.auth import Principal
from service.records import EventRecord
from service.store import JobStore

LOG_LINES = 200
"""The most recent log lines the page shows."""

_LAID_OUT_JOB_FIELDS = frozenset(
    {
        "id",
        "name",
        "state",
        "created_at",
        "started_at",
        "finished_at",
        "models",
        "request_counts",
        "tokens_processed",
        "tokens_per_second",
        "eta_seconds",
        "error",
        "results",
        "spec",
    }
)
_MODEL_FIELDS_APART = frozenset({"model", "resolved_path", "revision", "shards_total", "shards_done"})


@dataclass(frozen=True)
class Download:
    label: str
    href: str
    what: str


@dataclass(frozen=True)
class Column:
    name: str
    description: str


def downloads(view: JobView) -> list[Download]:
    """The result files the job has, as links to the API (the session cookie authenticates them)."""
    base = f"/v1/jobs/{view.id}/results"
    results, found = view.results, []
    if results.samples:
        found.append(Download("samples.parquet", f"{base}/samples", "one row per prompt scored"))
    if results.metrics:
        found.append(Download("metrics.parquet", f"{base}/metrics", "every metric with its interval and n"))
        found.append(Download("metrics.csv", f"{base}/metrics?format=csv", "the same table as CSV"))
    if results.spec:
        found.append(Download("spec.json", f"{base}/spec", "the spec with resolved versions and digests"))
    if results.report:
        found.append(Download("report.html", f"{base}/report", "plots and tables, one self-contained page"))
    return found


def model_columns() -> list[Column]:
    """Columns of the models table after the model and its shards: every other ModelProgress field."""
    return [
        Column(name, field.description or "")
        for name, field in ModelProgress.model_fields.items()
        if name not in _MODEL_FIELDS_APART
    ]


def extra_fields(view: JobView) -> list[tuple[Column, Any]]:
    """Job fields the page has no place of its own for, with their (non-empty) values."""
    found = []
    for name, field in type(view).model_fields.items():
        value = getattr(view, name)
        if name in _LAID_OUT_JOB_FIELDS or value is None or value in ([], {}, ()):
            continue
        plain = value.model_dump(mode="json") if hasattr(value, "model_dump") else value
        if isinstance(plain, list):
            plain = [item.model_dump(mode="json") if hasattr(item, "model_dump") else item for item in value]
        found.append((Column(name, field.description or ""), plain))
    return found


def job_page_context(*, store: JobStore, principal: Principal, job_id: str) -> dict[str, Any]:
    """Everything job.html renders (NotFoundError when the job does not exist or is not the caller's)."""
    view = jobs.get_job(store=store, principal=principal, job_id=job_id)
    log: list[EventRecord] = store.events(job_id)[-LOG_LINES:]
    spec = view.spec.model_dump(mode="json", exclude_defaults=True) if view.spec is not None else None
    return {
        "job": view,
        "downloads": downloads(view),
        "model_columns": model_columns(),
        "extra_fields": extra_fields(view),
        "log": log,
        "spec_yaml": yaml.safe_dump(spec, sort_keys=False, allow_unicode=True) if spec is not None else "",
    }
