"""What the report's figures show, read from the metrics table: the sweep axis, the rows of each panel, captions.

**The sweep axis.** Models form a sweep when they differ in a numeric label (``model_labels``): the spec's
``report.sweep_label`` if it names one, else ``params_b``, else ``rlhf_steps``, else the first other label
(alphabetically) with at least two different numeric values. Models without a numeric value of it are left
out of the sweep figures (and named in a note); if two models share a value, the figures cannot tell their
lines apart, so the report keeps interval plots and says why. The x axis is logarithmic when
``report.log_scale`` says so, else for ``params_b`` (model sizes) and for any label whose positive values
span a factor of ten or more (such as RLHF steps 50…1000).

Every number comes from the metrics table: the confidence level shown is the rows' ``confidence`` column,
the interval's kind their ``ci_method``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl

from evals.metrics.common import OVERALL
from evals.protocol import Headline
from service.report.figures import Panel, Point

PREFERRED_LABELS = ("params_b", "rlhf_steps")
_AXIS_TITLES = {"params_b": "model size (B parameters)", "rlhf_steps": "RLHF steps"}
_CI_WORDS = {"bootstrap": "clustered bootstrap", "fisher_z": "Fisher-z", "none": "no"}


@dataclass(frozen=True)
class SweepAxis:
    """The numeric label the sweep figures plot against, and each model's value of it."""

    label: str
    values: dict[str, float]
    log: bool

    @property
    def title(self) -> str:
        return _AXIS_TITLES.get(self.label, self.label) + (", log scale" if self.log else "")


def numeric(value: Any) -> float | None:
    """A label value as a number, if it is one (not a bool, finite)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def model_labels(metrics: pl.DataFrame) -> dict[str, dict[str, Any]]:
    """Each model's labels (the ``model_labels`` JSON), in order of appearance."""
    found: dict[str, dict[str, Any]] = {}
    for model, labels in metrics.select("model", "model_labels").unique(maintain_order=True).iter_rows():
        try:
            parsed = json.loads(labels or "{}")
        except ValueError:
            parsed = {}
        found.setdefault(str(model), parsed if isinstance(parsed, dict) else {})
    return found


def _log_scale(label: str, values: Iterable[float]) -> bool:
    values = list(values)
    if min(values) <= 0:
        return False
    return label == "params_b" or max(values) / min(values) >= 10


def choose_sweep(
    labels: Mapping[str, Mapping[str, Any]], *, preferred: str | None = None, log_scale: bool | None = None
) -> tuple[SweepAxis | None, list[str]]:
    """The sweep axis of these models (see the module docstring), and notes for the reader."""
    notes: list[str] = []
    names = sorted({name for model in labels.values() for name in model})
    candidates = [preferred] if preferred else [*PREFERRED_LABELS, *(n for n in names if n not in PREFERRED_LABELS)]
    for label in candidates:
        values = {model: v for model, own in labels.items() if (v := numeric(own.get(label))) is not None}
        if len(set(values.values())) < 2:
            if preferred:
                notes.append(
                    f"The spec names {label!r} as the sweep label, but fewer than two models have different "
                    "numeric values of it: interval plots instead."
                )
            continue
        shared = {v for v in values.values() if list(values.values()).count(v) > 1}
        if shared:
            models = ", ".join(m for m, v in values.items() if v in shared)
            notes.append(
                f"Models {models} share a value of {label!r}, so a sweep against it would merge their lines: "
                "interval plots instead (give each model its own value, or name another label in report.sweep_label)."
            )
            return None, notes
        left_out = [model for model in labels if model not in values]
        if left_out:
            notes.append(f"Left out of the sweep figures (no numeric {label!r} label): {', '.join(left_out)}.")
        log = _log_scale(label, values.values()) if log_scale is None else log_scale and min(values.values()) > 0
        return SweepAxis(label, values, log), notes
    return None, notes


def headline_rows(metrics: pl.DataFrame, headline: Headline, *, effect: bool = False) -> pl.DataFrame:
    """The overall rows of a headline metric (its ``delta_*`` rows with ``effect``)."""
    if effect:
        return metrics.filter(
            (pl.col("slice") == OVERALL)
            & (pl.col("metric") == f"delta_{headline.metric}")
            & (pl.col("method") == headline.method)
            & pl.col("baseline").is_not_null()
        )
    return metrics.filter(
        (pl.col("slice") == OVERALL)
        & (pl.col("metric") == headline.metric)
        & (pl.col("method") == headline.method)
        & (pl.col("ci_method") == headline.ci_method)
    )


def slice_rows(metrics: pl.DataFrame, headline: Headline) -> pl.DataFrame:
    """A per-slice headline's rows of every slice but ``overall``."""
    return metrics.filter(
        (pl.col("slice") != OVERALL)
        & (pl.col("metric") == headline.metric)
        & (pl.col("method") == headline.method)
        & (pl.col("ci_method") == headline.ci_method)
    )


def _point(row: Mapping[str, Any]) -> Point:
    def number(value: Any) -> float:
        return math.nan if value is None else float(value)

    return Point(number(row["value"]), number(row["ci_low"]), number(row["ci_high"]))


def interval_panel(rows: pl.DataFrame, *, title: str, value_label: str, row_key: str = "model") -> Panel:
    """A dot-and-whisker panel: one row per distinct ``row_key`` value, points per condition."""
    panel = Panel(title, value_label)
    for row in rows.iter_rows(named=True):
        label = str(row[row_key])
        if label not in panel.rows:
            panel.rows.append(label)
        panel.points.setdefault(str(row["condition"]), {})[label] = _point(row)
    return panel


def sweep_panel(rows: pl.DataFrame, axis: SweepAxis, *, title: str, value_label: str) -> Panel:
    """A sweep panel: per condition, each model's point at its value of the sweep label."""
    panel = Panel(title, value_label)
    for row in rows.iter_rows(named=True):
        x = axis.values.get(str(row["model"]))
        if x is not None:
            panel.points.setdefault(str(row["condition"]), {})[x] = _point(row)
    return panel


def percent(confidence: float) -> str:
    """0.95 → ``95%``; 0.999 → ``99.9%``."""
    return f"{confidence * 100:.4g}%"


def interval_words(rows: pl.DataFrame) -> str:
    """How the rows' intervals were computed, from their ``confidence`` and ``ci_method``: ``95% clustered
    bootstrap intervals``."""
    levels = sorted({float(c) for c in rows.get_column("confidence").to_list()})
    methods = [m for m in rows.get_column("ci_method").unique(maintain_order=True).to_list() if m != "none"]
    if not methods:
        return "no intervals (no bootstrap resamples)"
    level = " / ".join(percent(c) for c in levels)
    return f"{level} {' and '.join(_CI_WORDS.get(m, m) for m in methods)} intervals"


def confidence_header(rows: pl.DataFrame) -> str:
    """A table's interval column header: ``95% interval`` (from the rows' ``confidence``)."""
    levels = sorted({float(c) for c in rows.get_column("confidence").to_list()}) if rows.height else []
    return f"{' / '.join(percent(c) for c in levels)} interval".strip()
