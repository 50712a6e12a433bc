"""The report page: per benchmark its figures (with captions) and tables, then what produced the numbers.

Per benchmark (in the job's order, with the title, headline metrics and metric descriptions it declares:
``evals.protocol.Benchmark``):

1. **headline metrics** — a sweep figure (each headline against the sweep label, one line per condition) when
   the models form a sweep (:func:`service.report.data.choose_sweep`), else interval plots (one row per model,
   one marker per condition);
2. **effects against Q** — the ``delta_*`` rows the same way (against the label, or per model);
3. **per slice** — for a per-slice headline (BBQ s_AMB per category): small multiples, one panel per slice
   against the label, or one interval panel per model with a row per slice;
4. the tables: every overall metric, the effects, the per-slice headlines.

The page ends with what produced the numbers (packages, model revisions and fingerprints, dataset sha256s)
from each job's ``spec.json``. Every number comes from ``metrics.parquet``; nothing is computed here.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

import polars as pl

from evals.metrics.common import OVERALL
from evals.metrics.effects import BASELINE, effect_description
from evals.protocol import Benchmark
from service.report import data
from service.report.figures import Panel, Style, condition_styles, interval_figure, slugify, sweep_figure
from service.report.tables import cells, provenance, table

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1000px; color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { margin-top: 2em; border-bottom: 1px solid #ccc; } h3 { font-size: 1.05em; }
table { border-collapse: collapse; margin: .5em 0 1.5em; font-size: 13px; }
th, td { padding: 2px 8px; border-bottom: 1px solid #eee; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
p.note, figcaption { color: #444; } figure { margin: 1em 0 1.5em; }
figure svg { max-width: 100%; height: auto; } figcaption { font-size: 13px; max-width: 62em; }
summary { font-weight: 600; margin: 1em 0 .3em; cursor: pointer; }
dl.metrics dt { font-family: monospace; } dl.metrics dd { margin: 0 0 .3em 1.5em; color: #555; }
ul.notes li { color: #8a4b00; } code { font-size: 12px; }
"""


def _figure(kind: str, benchmark: Benchmark, svg: str, caption: str, **attributes: str) -> str:
    extra = "".join(f' data-{k.replace("_", "-")}="{escape(v)}"' for k, v in attributes.items())
    return (
        f'<figure class="{kind}" data-benchmark="{escape(benchmark.name)}"{extra}>{svg}'
        f"<figcaption>{caption}</figcaption></figure>"
    )


class BenchmarkSection:
    """One benchmark's part of the page."""

    def __init__(
        self, benchmark: Benchmark, metrics: pl.DataFrame, axis: data.SweepAxis | None, styles: dict[str, Style]
    ) -> None:
        self.benchmark = benchmark
        self.metrics = metrics
        self.axis = axis
        self.styles = styles
        self.slug = slugify(benchmark.name)

    def _draw(self, panels: list[Panel], slug: str, *, sweep: bool) -> str:
        if sweep and self.axis is not None:
            return sweep_figure(panels, self.styles, slug, x_label=self.axis.title, log_x=self.axis.log)
        return interval_figure(panels, self.styles, slug)

    def _panels(self, *, effect: bool) -> tuple[list[Panel], pl.DataFrame]:
        panels, used = [], []
        for headline in self.benchmark.headlines:
            rows = data.headline_rows(self.metrics, headline, effect=effect)
            if not rows.height:
                continue
            used.append(rows)
            label = f"Δ {headline.metric} vs {BASELINE}" if effect else headline.metric
            if self.axis is not None:
                panels.append(data.sweep_panel(rows, self.axis, title=headline.label, value_label=label))
            else:
                panels.append(data.interval_panel(rows, title=headline.label, value_label=label))
        return panels, pl.concat(used) if used else self.metrics.clear()

    def _headlines(self) -> str:
        panels, rows = self._panels(effect=False)
        if not panels:
            return ""
        title = self.benchmark.title
        if self.axis is not None:
            lead = (
                f"How {escape(title)}'s headline metrics change with {escape(self.axis.title)}: each line is a "
                f"prompting condition, each point a model; the shaded bands are {data.interval_words(rows)}."
            )
        else:
            lead = (
                f"{escape(title)}'s headline metrics: each marker is one model under one prompting condition, the "
                f"whiskers its {data.interval_words(rows)}; the dashed line marks 0."
            )
        svg = self._draw(panels, f"{self.slug}-headlines", sweep=True)
        kind = "sweep headlines" if self.axis is not None else "intervals headlines"
        return _figure(kind, self.benchmark, svg, lead, x=self.axis.label if self.axis else "")

    def _effects(self) -> str:
        panels, rows = self._panels(effect=True)
        if not panels:
            return ""
        against = f" against {escape(self.axis.title)}" if self.axis is not None else " per model"
        caption = (
            f"Self-correction as an effect{against}: each condition's change against {BASELINE} (the plain "
            "question), paired by item — the same items scored under both. Below 0: the condition lowered the "
            f"metric. Intervals: {data.interval_words(rows)} (paired: both conditions resampled together)."
        )
        svg = self._draw(panels, f"{self.slug}-effects", sweep=True)
        kind = "sweep effects" if self.axis is not None else "intervals effects"
        return _figure(kind, self.benchmark, svg, caption, x=self.axis.label if self.axis else "")

    def _slices(self) -> str:
        parts = []
        for headline in (h for h in self.benchmark.headlines if h.per_slice):
            rows = data.slice_rows(self.metrics, headline)
            if not rows.height:
                continue
            slices = rows.get_column("slice").unique(maintain_order=True).to_list()
            if self.axis is not None:
                panels = [
                    data.sweep_panel(
                        rows.filter(pl.col("slice") == s), self.axis, title=str(s), value_label=headline.metric
                    )
                    for s in slices
                ]
                how = f"against {escape(self.axis.title)}, one panel per slice, one line per condition"
            else:
                panels = [
                    data.interval_panel(
                        rows.filter(pl.col("model") == m), title=str(m), value_label=headline.metric, row_key="slice"
                    )
                    for m in rows.get_column("model").unique(maintain_order=True).to_list()
                ]
                how = "per slice (rows), one marker per condition, one panel per model"
            svg = self._draw(panels, f"{self.slug}-slices-{slugify(headline.metric)}", sweep=True)
            caption = f"{escape(headline.label)} {how}; {data.interval_words(rows)}."
            parts.append(_figure("slices", self.benchmark, svg, caption, metric=headline.metric))
        return "".join(parts)

    def _descriptions(self) -> str:
        items = []
        for headline in self.benchmark.headlines:
            description = self.benchmark.metric_descriptions.get(headline.metric, "")
            items.append(f"<dt>{escape(headline.metric)}</dt><dd>{escape(description)}</dd>")
            items.append(
                f"<dt>delta_{escape(headline.metric)}</dt><dd>{escape(effect_description(headline.metric))}</dd>"
            )
        return f'<dl class="metrics">{"".join(items)}</dl>'

    def _tables(self) -> str:
        overall = self.metrics.filter(pl.col("slice") == OVERALL)
        plain, effects = overall.filter(pl.col("baseline").is_null()), overall.filter(pl.col("baseline").is_not_null())
        parts = [
            "<details><summary>All metrics (overall)</summary>",
            table(
                ["model", "condition", "metric", "method", "value", data.confidence_header(plain), "n"],
                (cells(r, "metric", "method") for r in plain.to_dicts()),
                numeric_from=4,
            ),
            "</details>",
        ]
        if effects.height:
            parts += [
                f"<h3>Effects against {BASELINE} (paired by item)</h3>",
                table(
                    ["model", "condition", "metric", "value", data.confidence_header(effects), "n", "excluded"],
                    ([*cells(r, "metric"), str(r["n_excluded"])] for r in effects.to_dicts()),
                    numeric_from=3,
                ),
            ]
        for headline in (h for h in self.benchmark.headlines if h.per_slice):
            slices = data.slice_rows(self.metrics, headline)
            if slices.height:
                parts.append(
                    f"<details><summary><code>{escape(headline.metric)}</code> per slice ({escape(headline.method)})"
                    "</summary>"
                )
                parts.append(
                    table(
                        ["model", "condition", "slice", "value", data.confidence_header(slices), "n"],
                        (cells(r, "slice") for r in slices.to_dicts()),
                        numeric_from=3,
                    )
                )
                parts.append("</details>")
        return "".join(parts)

    def html(self) -> str:
        name = escape(self.benchmark.name)
        return (
            f'<section class="benchmark" id="benchmark-{slugify(self.benchmark.name)}">'
            f"<h2>{escape(self.benchmark.title)} <code>{name}</code></h2>"
            f"{self._headlines()}{self._effects()}{self._slices()}{self._descriptions()}{self._tables()}</section>"
        )


def render_page(
    metrics: pl.DataFrame,
    *,
    title: str,
    intro: str,
    benchmarks: Sequence[Benchmark],
    documents: Sequence[tuple[str, dict[str, Any]]],
    report_settings: dict[str, Any],
    notes: Sequence[str] = (),
    appendix: str = "",
) -> str:
    """The whole page. ``intro`` is HTML; ``documents`` are (job id, ``spec.json``) for the provenance;
    ``report_settings`` is a spec's ``report`` section (``sweep_label``, ``log_scale``); ``notes`` are shown
    first (cells that could not be combined, models left out of a sweep); ``appendix`` (HTML, e.g. the failed
    cells) comes after the benchmarks."""
    axis, axis_notes = data.choose_sweep(
        data.model_labels(metrics),
        preferred=report_settings.get("sweep_label"),
        log_scale=report_settings.get("log_scale"),
    )
    styles = condition_styles([str(c) for c in metrics.get_column("condition").unique(maintain_order=True)])
    present = set(metrics.get_column("benchmark").to_list())
    body = "".join(
        BenchmarkSection(b, metrics.filter(pl.col("benchmark") == b.name), axis, styles).html()
        for b in benchmarks
        if b.name in present
    )
    shown = [*notes, *axis_notes]
    notes_html = f'<ul class="notes">{"".join(f"<li>{escape(n)}</li>" for n in shown)}</ul>' if shown else ""
    produced = "".join(provenance(job if len(documents) > 1 else "", doc) for job, doc in documents)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>moralscope · {escape(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>moralscope report: {escape(title)}</h1>{intro}{notes_html}{body}{appendix}"
        f"<h2>What produced these numbers</h2>{produced}</body></html>\n"
    )
