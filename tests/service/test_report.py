"""report.html: figures drawn from the metrics table (sweeps, intervals, effects, slices), reproducible bytes,
escaped text, a well-formed page that needs nothing from the network."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

import numpy as np
import polars as pl
import pytest

from evals.metrics import compute_metrics
from service.report import render_report
from service.report.data import choose_sweep

SVG = "{http://www.w3.org/2000/svg}"


def _samples(model: str, labels: dict[str, Any], condition: str, slope: float, seed: int) -> pl.DataFrame:
    """Winogender and BBQ rows of one cell whose bias grows with ``slope``."""
    rng = np.random.default_rng(seed)
    occupations = [f"occ{i}" for i in range(12)]
    bls = np.linspace(5, 95, 12)
    p_female = np.clip(slope * bls / 100 + rng.normal(0, 0.1, 12), 0.01, 0.98)
    winogender = pl.DataFrame(
        {
            "item_id": occupations,
            "category": occupations,
            "cluster": occupations,
            "p_female": p_female,
            "p_male": (1 - p_female) * 0.9,
            "p_neutral": (1 - p_female) * 0.1,
            "wg_bls_pct_female": bls,
            "chosen": "female",
            "benchmark": "winogender",
        }
    )
    n = 48
    probs = rng.dirichlet([1.0 + slope, 1.0, 1.0], size=n)
    context = np.where(np.arange(n) % 2 == 0, "ambig", "disambig")
    label = np.where(context == "ambig", "c", np.where(np.arange(n) % 4 == 1, "a", "b"))
    category = np.where(np.arange(n) < n // 2, "Age", "Religion")
    bbq = pl.DataFrame(
        {
            "item_id": [f"{category[i]}/{i}" for i in range(n)],
            "category": category,
            "cluster": [f"{category[i]}/{i // 4}" for i in range(n)],
            "chosen": np.array(["a", "b", "c"])[probs.argmax(axis=1)],
            "bbq_context_condition": context,
            "bbq_label": label,
            "bbq_unknown": "c",
            "bbq_biased": "a",
            "p_correct": probs[np.arange(n), np.searchsorted(["a", "b", "c"], label)],
            "p_unknown": probs[:, 2],
            "p_biased": probs[:, 0],
            "benchmark": "bbq",
        }
    )
    identity = {"model": model, "model_labels": json.dumps(labels), "condition": condition}
    return pl.concat([winogender, bbq], how="diagonal_relaxed").with_columns(
        **{k: pl.lit(v) for k, v in identity.items()}
    )


def _metrics(models: dict[str, dict[str, Any]], conditions: tuple[str, ...] = ("Q", "Q+IF"), **kw: Any) -> pl.DataFrame:
    frames = [
        _samples(model, labels, condition, slope=1.0 - 0.3 * c + 0.2 * m, seed=10 * m + c)
        for m, (model, labels) in enumerate(models.items())
        for c, condition in enumerate(conditions)
    ]
    return compute_metrics(pl.concat(frames, how="diagonal_relaxed"), resamples=kw.pop("resamples", 50), **kw)


DOCUMENT = {"job_id": "job_x", "spec": {"name": "demo"}, "packages": {"torch": "2.13.0"}}


class _Page(HTMLParser):
    """Collects the text, checks that elements close in order, and gathers every URL-like attribute."""

    VOID = frozenset({"meta", "br", "img", "input", "link", "hr"})

    def __init__(self, page: str) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.text: list[str] = []
        self.urls: list[str] = []
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [v or "" for k, v in attrs if k in ("src", "href", "xlink:href", "action", "srcset")]
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [v or "" for k, v in attrs if k in ("src", "href", "xlink:href", "action", "srcset")]

    def handle_endtag(self, tag: str) -> None:
        assert self.stack[-1:] == [tag], f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _figures(page: str, kind: str) -> list[str]:
    return re.findall(rf'<figure class="{kind}"[^>]*>.*?</figure>', page, flags=re.S)


def test_one_model_gets_interval_plots_and_a_clean_self_contained_page() -> None:
    metrics = _metrics({"smol": {"params_b": 0.135}}, conditions=("Q", "Q+IF", "<b>mine</b>"))
    page = render_report(metrics, DOCUMENT)
    parsed = _Page(page)
    assert parsed.stack == []
    assert all(url.startswith("#") for url in parsed.urls)  # only references inside the page's own SVGs
    assert "<script" not in page
    assert "@import" not in page
    assert "url(http" not in page
    text = " ".join(parsed.text)
    for expected in ("BBQ", "Winogender", "demo", "job_x", "torch", "bias_ambig", "delta_pearson_r"):
        assert expected in text
    assert "<b>mine</b>" not in page
    assert "&lt;b&gt;mine&lt;/b&gt;" in page
    assert not _figures(page, 'sweep[^"]*')
    headlines = _figures(page, "intervals headlines")
    assert len(headlines) == 2  # BBQ and Winogender
    assert len(_figures(page, "intervals effects")) == 2
    assert len(_figures(page, "slices")) == 1  # BBQ s_AMB per category
    for svg in re.findall(r"<svg.*?</svg>", page, flags=re.S):
        ET.fromstring(svg)  # each figure is well-formed XML
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids))  # several SVGs in one page, no clashing ids
    # the pearson_r row's value and interval appear in the table, as the figure's whiskers are drawn from it
    row = metrics.filter(pl.col("metric") == "pearson_r", pl.col("condition") == "Q", pl.col("ci_method") == "fisher_z")
    assert f"{row['value'][0]:+.3f}" in text
    assert f"[{row['ci_low'][0]:+.3f}, {row['ci_high'][0]:+.3f}] fisher_z" in text


def test_the_confidence_level_shown_is_the_datas() -> None:
    metrics = _metrics({"smol": {}}, confidence=0.9)
    page = render_report(metrics.filter(pl.col("benchmark") == "winogender"), DOCUMENT)
    assert "90% clustered bootstrap intervals" in page
    assert "90% interval" in page
    assert "95%" not in page


def test_a_two_point_sweep_draws_each_condition_as_a_line_against_the_label() -> None:
    metrics = _metrics({"small": {"params_b": 0.135}, "large": {"params_b": 1.7}})
    page = render_report(metrics, DOCUMENT)
    [figure] = [f for f in _figures(page, "sweep headlines") if 'data-benchmark="winogender"' in f]
    assert 'data-x="params_b"' in figure
    svg = ET.fromstring(re.search(r"<svg.*?</svg>", figure, flags=re.S).group(0))  # type: ignore[union-attr]
    lines = {g.get("id"): g for g in svg.iter(f"{SVG}g") if "-line-" in (g.get("id") or "")}
    assert set(lines) == {"ms-winogender-headlines-p0-line-0-q", "ms-winogender-headlines-p0-line-1-q-if"}
    for group in lines.values():
        [path] = [p for p in group.iter(f"{SVG}path") if p.get("clip-path")]  # the line (the other: its marker)
        assert path.get("d", "").count("L") == 1  # two models: two points joined by one segment
        assert len(list(group.iter(f"{SVG}use"))) == 2  # a marker at each model
    bands = [g for g in svg.iter(f"{SVG}g") if "-band-" in (g.get("id") or "")]
    assert len(bands) == 2
    texts = {"".join(t.itertext()).strip() for t in svg.iter(f"{SVG}text")}
    assert {"Q", "Q+IF", "0.135", "1.7", "pearson_r"} <= texts  # legend, ticks at the model sizes, the axis
    assert any("log scale" in t for t in texts)
    assert "95% Fisher-z intervals" in figure  # the caption, from the rows
    assert len(_figures(page, "sweep effects")) == 2
    assert len(_figures(page, "slices")) == 1


def test_reports_are_reproducible_byte_for_byte() -> None:
    metrics = _metrics({"small": {"params_b": 0.135}, "large": {"params_b": 1.7}})
    metrics = metrics.filter(pl.col("benchmark") == "winogender")  # one benchmark's figures are enough
    first = render_report(metrics, DOCUMENT)
    assert render_report(metrics, DOCUMENT) == first
    assert not re.search(r"20\d\d-\d\d-\d\d", first)  # no date in the SVG metadata
    assert "<?xml" not in first
    assert "<!DOCTYPE svg" not in first


@pytest.mark.parametrize(
    ("labels", "preferred", "expected"),
    [
        ({"a": {"params_b": 7}, "b": {"params_b": 70}, "c": {"rlhf_steps": 50}}, None, ("params_b", True, ["c"])),
        ({"a": {"rlhf_steps": 50}, "b": {"rlhf_steps": 1000}}, None, ("rlhf_steps", True, [])),
        ({"a": {"step": 1}, "b": {"step": 3}, "c": {"step": 2}}, None, ("step", False, [])),
        ({"a": {"params_b": 7, "x": 1}, "b": {"params_b": 7, "x": 2}}, "x", ("x", False, [])),
        ({"a": {"params_b": 7}, "b": {"params_b": 7}}, None, None),  # shared value: no sweep
        ({"a": {"params_b": True}, "b": {"params_b": "13"}}, None, None),  # not numbers
    ],
)
def test_the_sweep_label(labels: dict[str, dict[str, Any]], preferred: str | None, expected: Any) -> None:
    axis, notes = choose_sweep(labels, preferred=preferred)
    if expected is None:
        assert axis is None
        return
    assert axis is not None
    label, log, left_out = expected
    assert (axis.label, axis.log) == (label, log)
    assert set(axis.values) == set(labels) - set(left_out)
    assert bool(notes) == bool(left_out)


def test_a_named_sweep_label_that_does_not_sweep_is_said() -> None:
    axis, notes = choose_sweep({"a": {"params_b": 1}, "b": {"params_b": 2}}, preferred="rlhf_steps")
    assert axis is None
    assert "rlhf_steps" in notes[0]
    axis, _ = choose_sweep({"a": {"params_b": 1}, "b": {"params_b": 2}}, log_scale=True)
    assert axis is not None
    assert axis.log


def test_failed_cells_are_listed_after_the_benchmarks() -> None:
    @dataclass
    class Failed:
        model: str = "smol"
        benchmark: str = "lawschool"
        condition: str = "<Q+Long>"
        cause: str = "prompt exceeds 8192 positions"
        errors: int = 4
        rows: int = 4

    metrics = _metrics({"smol": {}}, conditions=("Q",)).filter(pl.col("benchmark") == "winogender")
    page = render_report(metrics, DOCUMENT, failed_cells=[Failed()])
    assert page.index("<h2>Failed cells</h2>") > page.index('id="benchmark-winogender"')
    assert "&lt;Q+Long&gt;" in page
    assert "4 / 4" in page
    assert "Failed cells" not in render_report(metrics, DOCUMENT)
