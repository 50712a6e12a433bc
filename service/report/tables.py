"""The report's tables: numbers with their intervals, and what produced them (from ``spec.json``)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from html import escape
from typing import Any, Protocol


def number(value: float | None, digits: int = 3) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:+.{digits}f}"


def _interval(row: dict[str, Any]) -> str:
    if row["ci_low"] is None or not math.isfinite(row["ci_low"]):
        return "–"
    return f"[{number(row['ci_low'])}, {number(row['ci_high'])}] {escape(row['ci_method'])}"


def table(header: Iterable[str], rows: Iterable[Iterable[str]], numeric_from: int) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(f'<td class="n">{c}</td>' if i >= numeric_from else f"<td>{c}</td>" for i, c in enumerate(r))
        + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def cells(row: dict[str, Any], *labels: str) -> list[str]:
    """A table row: model, condition, the ``labels`` columns, value, interval, n."""
    text = [escape(str(row[k])) for k in ("model", "condition", *labels)]
    return [*text, number(row["value"]), _interval(row), str(row["n"])]


def provenance(job: str, document: dict[str, Any]) -> str:
    """A job's packages, models and datasets as tables (headed by the job's id when ``job`` is given)."""
    parts = [f"<h3>Job <code>{escape(job)}</code></h3>"] if job else []
    packages = document.get("packages") or {}
    if packages:
        parts.append(table(["package", "version"], ([escape(k), escape(str(v))] for k, v in packages.items()), 1))
    models = document.get("models") or []
    if models:
        keys = ["key", "name", "source", "revision", "fingerprint", "prompt_format"]
        parts.append(table(keys, ([escape(str(m.get(k, "–"))) for k in keys] for m in models), len(keys)))
    datasets = document.get("datasets") or []
    if datasets:
        keys = ["dataset", "key", "rows", "sha256"]
        parts.append(table(keys, ([escape(str(d.get(k, "–"))) for k in keys] for d in datasets), len(keys)))
    return "".join(parts)


class FailedCellRow(Protocol):
    """A cell left without metrics because of its error rows (the runner's ``FailedCell``)."""

    # read-only members, so that frozen models (schemas.jobs.FailedCell) match
    @property
    def model(self) -> str: ...
    @property
    def benchmark(self) -> str: ...
    @property
    def condition(self) -> str: ...
    @property
    def cause(self) -> str: ...
    @property
    def errors(self) -> int: ...
    @property
    def rows(self) -> int: ...


def failed_cells_section(cells: Sequence[FailedCellRow]) -> str:
    """The "failed cells" section: cells left without metrics because of their error rows."""
    if not cells:
        return ""
    rows = (
        [escape(c.model), escape(c.benchmark), escape(c.condition), escape(c.cause), f"{c.errors} / {c.rows}"]
        for c in cells
    )
    return (
        "<h2>Failed cells</h2>"
        '<p class="note">These cells have more error rows (prompts the engine could not score) than the spec\'s '
        "<code>max_error_rate</code> allows, so they have no metrics (nor effects); their rows, with each error, "
        "are in <code>samples.parquet</code>.</p>"
        + table(["model", "benchmark", "condition", "cause", "error rows"], rows, numeric_from=4)
    )
