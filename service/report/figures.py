"""The report's figures, drawn with matplotlib and inlined as SVG: interval plots and sweep plots.

Everything here is drawing; what to draw (which rows, which axis) is decided in :mod:`service.report.data`.

- :func:`interval_figure`: dot-and-whisker panels, one row per model (or slice), one marker per condition
  with its interval, a dashed line at 0 — a job whose models do not form a sweep;
- :func:`sweep_figure`: panels of a metric against a numeric model label (log or linear x), one line per
  condition with its interval as a shaded band — the layout of Ganguli et al. 2023's Figures 1 and 2.

Rendering is headless and reproducible: :class:`matplotlib.figure.Figure` objects with no pyplot and no GUI
backend (the SVG canvas), fixed rc settings (``svg.hashsalt``, text as ``<text>``), no date or creator in the
metadata, and every element id prefixed with the figure's slug so that several SVGs share one HTML page
without clashing ids. The same input gives the same bytes. Colours are the Okabe–Ito palette (distinct for
colour-blind readers), and each condition also has its own marker, so no figure relies on colour alone.
Elements a test or a reader may want to find carry ids: ``ms-<slug>-p<panel>-line-<i>-<condition>`` (a sweep
line; ``i`` is the condition's place in the report), ``...-band-...`` (its interval band), ``...-points-...``
(an interval plot's markers), ``ms-<slug>-legend-<i>`` (a legend entry).
"""

from __future__ import annotations

import io
import math
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

OKABE_ITO = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
"""Okabe & Ito (2008), "Color Universal Design": blue, vermillion, bluish green, reddish purple, orange, sky
blue, black, yellow (last: it is faint on white)."""
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
_RC: Any = {  # matplotlib rc settings (typed as its Literal keys; Any keeps this a plain dict)
    "svg.hashsalt": "moralscope",
    "svg.fonttype": "none",
    "font.family": "sans-serif",
    "font.size": 9.0,
    "axes.titlesize": 10.0,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#e6e6e6",
    "grid.linewidth": 0.6,
    "legend.frameon": False,
}
_LOCK = threading.Lock()  # rc settings are process-wide: one figure at a time
_PANEL_WIDTH, _MAX_COLUMNS = 3.2, 3  # inches per panel; panels per row


@dataclass(frozen=True)
class Point:
    """One value with its interval (NaN bounds: none)."""

    value: float
    low: float = math.nan
    high: float = math.nan


@dataclass
class Panel:
    """One axes: a title, the value axis' label, and per condition its points.

    An interval panel keys points by row label (``rows`` gives the order, top to bottom); a sweep panel
    keys them by x value.
    """

    title: str
    value_label: str
    points: dict[str, dict[Any, Point]] = field(default_factory=dict)
    rows: list[str] = field(default_factory=list)


def slugify(text: str) -> str:
    """``Q+IF+CoT`` → ``q-if-cot``: a fragment safe in ids and CSS selectors."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


@dataclass(frozen=True)
class Style:
    """A condition's colour and marker, the same in every figure of a report."""

    colour: str
    marker: str


def condition_styles(conditions: Sequence[str]) -> dict[str, Style]:
    return {name: Style(OKABE_ITO[i % len(OKABE_ITO)], MARKERS[i % len(MARKERS)]) for i, name in enumerate(conditions)}


@contextmanager
def _figure(panels: int, height: float) -> Iterator[tuple[Figure, list[Axes]]]:
    import matplotlib
    from matplotlib.figure import Figure

    columns = min(panels, _MAX_COLUMNS)
    rows = math.ceil(panels / columns)
    with _LOCK, matplotlib.rc_context(_RC):
        figure = Figure(figsize=(max(_PANEL_WIDTH * columns, 4.5), height * rows + 0.5), layout="constrained")
        grid = figure.subplots(rows, columns, squeeze=False)
        axes = [ax for row in grid for ax in row]
        for ax in axes[panels:]:
            ax.set_visible(False)
        yield figure, axes[:panels]


def _to_svg(figure: Figure, slug: str) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]  # no XML declaration or doctype inside an HTML page
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.S)
    own = {i for i in re.findall(r'id="([^"]+)"', svg) if not i.startswith("ms-")}

    def prefixed(match: re.Match[str]) -> str:
        name = match.group(2)
        return f"{match.group(1)}{slug}-{name}" if name in own else match.group(0)

    svg = re.sub(r'(id="|href="#|url\(#)([^")]+)', prefixed, svg)
    return svg.replace("<svg ", f'<svg class="figure" role="img" aria-label="{slug}" ', 1)


def _legend(figure: Figure, conditions: Sequence[str], styles: dict[str, Style], slug: str) -> None:
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], color=styles[c].colour, marker=styles[c].marker, linewidth=1.5, label=c) for c in conditions
    ]
    legend = figure.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 6))
    for index, text in enumerate(legend.get_texts()):
        text.set_gid(f"ms-{slug}-legend-{index}")


def _zero_line(ax: Axes, *, vertical: bool) -> None:
    if vertical:
        ax.axvline(0.0, color="#777777", linestyle="--", linewidth=0.8, zorder=1)
    else:
        ax.axhline(0.0, color="#777777", linestyle="--", linewidth=0.8, zorder=1)


def interval_figure(panels: Sequence[Panel], styles: dict[str, Style], slug: str) -> str:
    """Dot-and-whisker panels: rows top to bottom, each condition's marker offset within its row."""
    conditions = [c for c in styles if any(c in p.points for p in panels)]
    rows = max(len(p.rows) for p in panels)
    height = 0.45 + rows * (0.12 + 0.09 * len(conditions))
    with _figure(len(panels), height) as (figure, axes):
        for number, (ax, panel) in enumerate(zip(axes, panels, strict=True)):
            present = [c for c in conditions if c in panel.points]
            step = 0.7 / max(len(present), 1)
            for index, condition in enumerate(present):
                offset = (index - (len(present) - 1) / 2) * step
                y, x, low, high = [], [], [], []
                for row, label in enumerate(panel.rows):
                    point = panel.points[condition].get(label)
                    if point is None or not math.isfinite(point.value):
                        continue
                    y.append(row + offset)
                    x.append(point.value)
                    finite = math.isfinite(point.low) and math.isfinite(point.high)
                    low.append(point.value - point.low if finite else 0.0)
                    high.append(point.high - point.value if finite else 0.0)
                style = styles[condition]
                container = ax.errorbar(
                    x, y, xerr=[low, high], fmt=style.marker, color=style.colour, markersize=4.5, capsize=2.5
                )
                container.lines[0].set_gid(f"ms-{slug}-p{number}-points-{index}-{slugify(condition)}")
            _zero_line(ax, vertical=True)
            ax.set_yticks(range(len(panel.rows)), panel.rows)
            ax.set_ylim(len(panel.rows) - 0.5, -0.5)
            ax.grid(axis="y", visible=False)
            ax.set_xlabel(panel.value_label)
            ax.set_title(panel.title)
        _legend(figure, conditions, styles, slug)
        return _to_svg(figure, slug)


def _format_tick(value: float) -> str:
    return f"{value:g}"


def sweep_figure(
    panels: Sequence[Panel], styles: dict[str, Style], slug: str, *, x_label: str, log_x: bool, zero: bool = True
) -> str:
    """A metric against a numeric label per panel: one line per condition, its interval a shaded band."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    conditions = [c for c in styles if any(c in p.points for p in panels)]
    with _figure(len(panels), 2.6) as (figure, axes):
        for number, (ax, panel) in enumerate(zip(axes, panels, strict=True)):
            xs: set[float] = set()
            for index, condition in enumerate(conditions):
                series = sorted(panel.points.get(condition, {}).items())
                if not series:
                    continue
                x = [float(v) for v, _ in series]
                xs.update(x)
                style = styles[condition]
                ax.fill_between(
                    x,
                    [p.low for _, p in series],
                    [p.high for _, p in series],
                    color=style.colour,
                    alpha=0.18,
                    linewidth=0,
                    gid=f"ms-{slug}-p{number}-band-{index}-{slugify(condition)}",
                )
                ax.plot(
                    x,
                    [p.value for _, p in series],
                    color=style.colour,
                    marker=style.marker,
                    markersize=4,
                    linewidth=1.5,
                    gid=f"ms-{slug}-p{number}-line-{index}-{slugify(condition)}",
                )
            if zero:
                _zero_line(ax, vertical=False)
            if log_x:
                ax.set_xscale("log")
            ticks = sorted(xs)
            if len(ticks) <= 10:  # the study's figures mark every model size
                ax.xaxis.set_major_locator(FixedLocator(ticks))
                ax.xaxis.set_minor_locator(NullLocator())
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _format_tick(v)))
            ax.set_xlabel(x_label)
            ax.set_ylabel(panel.value_label)
            ax.set_title(panel.title)
        _legend(figure, conditions, styles, slug)
        return _to_svg(figure, slug)
