"""``report.html``: a job's metrics for people — one self-contained page, no scripts, no external assets.

Per benchmark (in the job's order, with the title, headline metrics and metric descriptions it declares:
``evals.protocol.Benchmark``), interval plots of the headline metrics (one row per model × condition: the
value and its 95% interval, with zero marked), the full table of its overall metrics, and per slice the
headlines that ask for it (BBQ: s_AMB per category). The page ends with what produced the numbers
(packages, model revisions and fingerprints, dataset sha256s) from ``spec.json``. Every number comes from
``metrics.parquet``; nothing is computed here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

import polars as pl

from evals.benchmarks import get_benchmark, registered_names
from evals.protocol import Benchmark
from schemas.jobs import FailedCell

_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 980px; color: #222; }
h1 { font-size: 1.5em; } h2 { margin-top: 2em; border-bottom: 1px solid #ccc; } h3 { font-size: 1.05em; }
table { border-collapse: collapse; margin: .5em 0 1.5em; font-size: 13px; }
th, td { padding: 2px 8px; border-bottom: 1px solid #eee; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
p.note { color: #555; } svg text { font: 12px system-ui, sans-serif; }
code { font-size: 12px; }
"""
_ROW_HEIGHT, _LABEL_WIDTH, _PLOT_WIDTH = 22, 300, 480


def _number(value: float | None, digits: int = 3) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:+.{digits}f}"


def _interval(row: dict[str, Any]) -> str:
    if row["ci_low"] is None or not math.isfinite(row["ci_low"]):
        return "–"
    return f"[{_number(row['ci_low'])}, {_number(row['ci_high'])}] {escape(row['ci_method'])}"


def _table(header: Iterable[str], rows: Iterable[Iterable[str]], numeric_from: int) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(f'<td class="n">{c}</td>' if i >= numeric_from else f"<td>{c}</td>" for i, c in enumerate(r))
        + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cells(row: dict[str, Any], *labels: str) -> list[str]:
    """A table row: model, condition, the ``labels`` columns, value, interval, n."""
    text = [escape(str(row[k])) for k in ("model", "condition", *labels)]
    return [*text, _number(row["value"]), _interval(row), str(row["n"])]


def interval_plot(rows: list[dict[str, Any]]) -> str:
    """An SVG dot-and-whisker plot: one line per row (``label``, ``value``, ``ci_low``, ``ci_high``)."""
    finite = [v for r in rows for v in (r["value"], r["ci_low"], r["ci_high"]) if v is not None and math.isfinite(v)]
    low, high = min([0.0, *finite]), max([0.0, *finite])
    if high - low < 1e-9:
        low, high = low - 1, high + 1
    pad = (high - low) * 0.05
    low, high = low - pad, high + pad

    def x(value: float) -> float:
        return float(_LABEL_WIDTH + (value - low) / (high - low) * _PLOT_WIDTH)

    height = _ROW_HEIGHT * len(rows) + 24
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_LABEL_WIDTH + _PLOT_WIDTH + 10}" height="{height}">',
        f'<line x1="{x(0):.1f}" y1="0" x2="{x(0):.1f}" y2="{height - 20}" stroke="#999" stroke-dasharray="3,3"/>',
    ]
    for i, row in enumerate(rows):
        y = _ROW_HEIGHT * i + _ROW_HEIGHT / 2
        parts.append(f'<text x="0" y="{y + 4:.1f}">{escape(row["label"])}</text>')
        if row["ci_low"] is not None and math.isfinite(row["ci_low"]):
            parts.append(
                f'<line x1="{x(row["ci_low"]):.1f}" y1="{y:.1f}" x2="{x(row["ci_high"]):.1f}" y2="{y:.1f}" '
                'stroke="#4a74b5" stroke-width="2"/>'
            )
        if row["value"] is not None and math.isfinite(row["value"]):
            parts.append(
                f'<circle cx="{x(row["value"]):.1f}" cy="{y:.1f}" r="4" fill="#1f3f73">'
                f"<title>{_number(row['value'])} {_interval(row)}</title></circle>"
            )
    for tick in (low + pad, 0.0, high - pad):
        parts.append(
            f'<text x="{x(tick):.1f}" y="{height - 4}" text-anchor="middle" fill="#555">{_number(tick, 2)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _benchmark_section(benchmark: Benchmark, metrics: pl.DataFrame) -> str:
    overall = metrics.filter(pl.col("slice") == "overall")
    parts = [f"<h2>{escape(benchmark.title)} <code>{escape(benchmark.name)}</code></h2>"]
    several_models = overall["model"].n_unique() > 1
    for headline in benchmark.headlines:
        metric, method, ci_method = headline.metric, headline.method, headline.ci_method
        rows = overall.filter(
            (pl.col("metric") == metric) & (pl.col("method") == method) & (pl.col("ci_method") == ci_method)
        ).to_dicts()
        if not rows:
            continue
        for row in rows:
            row["label"] = f"{row['model']} · {row['condition']}" if several_models else row["condition"]
        parts += [
            f"<h3><code>{escape(metric)}</code> ({escape(method)}; {escape(ci_method)} interval)</h3>",
            f'<p class="note">{escape(benchmark.metric_descriptions.get(metric, ""))}</p>',
            interval_plot(rows),
        ]
    parts.append("<h3>All metrics (overall)</h3>")
    parts.append(
        _table(
            ["model", "condition", "metric", "method", "value", "95% interval", "n"],
            (_cells(r, "metric", "method") for r in overall.to_dicts()),
            numeric_from=4,
        )
    )
    for headline in (h for h in benchmark.headlines if h.per_slice):
        slices = metrics.filter(
            (pl.col("slice") != "overall")
            & (pl.col("metric") == headline.metric)
            & (pl.col("method") == headline.method)
            & (pl.col("ci_method") == headline.ci_method)
        )
        if slices.height:
            parts.append(f"<h3><code>{escape(headline.metric)}</code> per slice ({escape(headline.method)})</h3>")
            parts.append(
                _table(
                    ["model", "condition", "slice", "value", "95% interval", "n"],
                    (_cells(r, "slice") for r in slices.to_dicts()),
                    numeric_from=3,
                )
            )
    return "".join(parts)


def _provenance_section(document: dict[str, Any]) -> str:
    parts = ["<h2>What produced these numbers</h2>"]
    packages = document.get("packages") or {}
    if packages:
        parts.append(_table(["package", "version"], ([escape(k), escape(str(v))] for k, v in packages.items()), 1))
    models = document.get("models") or []
    if models:
        keys = ["key", "name", "source", "revision", "fingerprint", "prompt_format"]
        parts.append(_table(keys, ([escape(str(m.get(k, "–"))) for k in keys] for m in models), len(keys)))
    datasets = document.get("datasets") or []
    if datasets:
        keys = ["dataset", "key", "rows", "sha256"]
        parts.append(_table(keys, ([escape(str(d.get(k, "–"))) for k in keys] for d in datasets), len(keys)))
    return "".join(parts)


def failed_cells_section(cells: Sequence[FailedCell]) -> str:
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
        "<code>max_error_rate</code> allows, so they have no metrics; their rows, with each error, are in "
        "<code>samples.parquet</code>.</p>"
        + _table(["model", "benchmark", "condition", "cause", "error rows"], rows, numeric_from=4)
    )


def render_report(
    metrics: pl.DataFrame,
    document: dict[str, Any],
    benchmarks: Sequence[Benchmark] | None = None,
    *,
    failed_cells: Sequence[FailedCell] = (),
) -> str:
    """The HTML page of a job's metrics table and its resolved spec (``spec.json``); ``benchmarks`` are the
    job's (``evals.benchmarks.job_benchmarks``) in its order, default: the registered ones in the table;
    ``failed_cells`` get a short section of their own (they have no metrics)."""
    job = document.get("job_id", "")
    name = (document.get("spec") or {}).get("name") or job
    present = set(metrics["benchmark"].to_list())
    if benchmarks is None:
        benchmarks = [get_benchmark(n) for n in registered_names() if n in present]
    body = "".join(
        _benchmark_section(b, metrics.filter(pl.col("benchmark") == b.name)) for b in benchmarks if b.name in present
    )
    body += failed_cells_section(failed_cells)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>moralscope · {escape(str(name))}</title><style>{_STYLE}</style></head><body>"
        f"<h1>moralscope report: {escape(str(name))}</h1>"
        f'<p class="note">Job <code>{escape(str(job))}</code>. Values and 95% intervals from '
        "<code>metrics.parquet</code>; definitions in docs/science.md (SPEC §3–5, §7).</p>"
        f"{body}{_provenance_section(document)}</body></html>\n"
    )
