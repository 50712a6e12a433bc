"""report.html: every plotted number comes from the metrics table, text is escaped, the page is well formed."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from typing import Any

import polars as pl

from schemas.tables import METRICS_SCHEMA
from service.report import interval_plot, render_report


def _row(
    benchmark: str, condition: str, metric: str, value: float, ci: tuple[float, float], **extra: Any
) -> dict[str, Any]:
    return {
        "model": "m",
        "model_labels": "{}",
        "benchmark": benchmark,
        "condition": condition,
        "slice": extra.get("slice", "overall"),
        "metric": metric,
        "method": extra.get("method", "expected"),
        "value": value,
        "ci_low": ci[0],
        "ci_high": ci[1],
        "ci_method": extra.get("ci_method", "bootstrap"),
        "confidence": 0.95,
        "n": 40,
        "n_clusters": 40,
        "n_excluded": 0,
    }


def _metrics() -> pl.DataFrame:
    rows = [
        _row("bbq", "Q", "bias_ambig", 0.25, (0.1, 0.4)),
        _row("bbq", "Q+IF", "bias_ambig", -0.125, (-0.3, 0.05)),
        _row("bbq", "Q", "bias_ambig", 0.5, (0.2, 0.7), slice="Age"),
        _row("bbq", "Q", "n_undetermined", 0.0, (math.nan, math.nan), ci_method="none"),
        _row("winogender", "<b>mine</b>", "pearson_r", 0.375, (0.1, 0.6), ci_method="fisher_z"),
        _row("lawschool", "Q", "parity_difference", -0.004, (-0.006, -0.002)),
    ]
    return pl.DataFrame(rows, schema=pl.Schema(pl.from_arrow(METRICS_SCHEMA.empty_table()).schema))


class _Checker(HTMLParser):
    """Collects the text and counts unclosed elements of a page."""

    VOID = frozenset({"meta", "br", "img", "input", "link", "hr"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        pass

    def handle_endtag(self, tag: str) -> None:
        assert self.stack[-1:] == [tag], f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_the_page_holds_every_benchmark_and_value_and_is_well_formed() -> None:
    page = render_report(_metrics(), {"job_id": "job_x", "spec": {"name": "demo"}, "packages": {"torch": "2.13.0"}})
    checker = _Checker()
    checker.feed(page)
    assert checker.stack == []
    text = " ".join(checker.text)
    for expected in ("BBQ", "Winogender", "Law school admissions", "demo", "job_x", "+0.250", "-0.125", "torch"):
        assert expected in text
    assert "[+0.100, +0.400] bootstrap" in text
    assert "Age" in text  # the per-category table
    assert "<b>mine</b>" not in page
    assert "&lt;b&gt;mine&lt;/b&gt;" in page
    for svg in re.findall(r"<svg.*?</svg>", page, flags=re.S):
        ET.fromstring(svg)  # each plot is well-formed XML


def test_the_plot_places_values_and_intervals_on_one_scale() -> None:
    rows = [
        {"label": "a", "value": 0.0, "ci_low": -1.0, "ci_high": 1.0, "ci_method": "bootstrap"},
        {"label": "b", "value": 1.0, "ci_low": math.nan, "ci_high": math.nan, "ci_method": "none"},
    ]
    svg = ET.fromstring(interval_plot(rows))
    circles = [float(c.get("cx", "nan")) for c in svg.iter("{http://www.w3.org/2000/svg}circle")]
    whiskers = [e for e in svg.iter("{http://www.w3.org/2000/svg}line") if e.get("stroke-width") == "2"]
    assert len(circles) == 2
    assert len(whiskers) == 1
    x1, x2 = float(whiskers[0].get("x1", "nan")), float(whiskers[0].get("x2", "nan"))
    assert math.isclose(circles[0], (x1 + x2) / 2)  # 0 is the interval's midpoint
    assert math.isclose(circles[1], x2)  # 1 is the interval's upper end
