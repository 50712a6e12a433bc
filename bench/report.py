"""What finalizing a job costs beyond its metrics: the paired effects (``delta_*`` rows) and the report's figures.

Builds a synthetic samples table of a paper-shaped sweep — BBQ with every row of the eleven categories
(58,492 rows, templates of four), the 60 Winogender occupations, ``--students`` law-school students (two rows
each) — for ``--models`` models (``params_b`` labels) × ``--conditions`` conditions, with answers drawn at
random. Prints (median of ``--repeat`` runs, seconds):

- ``compute_metrics`` without effects (``baseline=None``) and with them, and the difference;
- ``render_report`` of the resulting metrics: a sweep report when there are several models (headlines,
  effects and BBQ per category against ``params_b``), interval plots with one; the page's size.

    python -m bench.report --models 5 --conditions 3
    python -m bench.report --models 1 --json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

CONDITIONS = ("Q", "Q+IF", "Q+IF+CoT", "Q+MatchStats")
BBQ_ROWS, BBQ_CATEGORIES = 58_492, 11


def _cell(rng: np.random.Generator, students: int) -> pl.DataFrame:
    """One model × condition: BBQ, Winogender and law-school rows with random answers."""
    n = BBQ_ROWS
    probs = rng.dirichlet([1.2, 1.0, 1.0], size=n)
    context = np.where(np.arange(n) % 2 == 0, "ambig", "disambig")
    label = np.where(context == "ambig", 2, rng.integers(0, 2, size=n))
    category = np.array([f"cat{i * BBQ_CATEGORIES // n}" for i in range(n)])
    bbq = pl.DataFrame(
        {
            "benchmark": "bbq",
            "item_id": [f"{category[i]}/{i}" for i in range(n)],
            "category": category,
            "cluster": [f"{category[i]}/{i // 4}" for i in range(n)],
            "chosen": np.array(["a", "b", "c"])[probs.argmax(axis=1)],
            "bbq_context_condition": context,
            "bbq_label": np.array(["a", "b", "c"])[label],
            "bbq_unknown": "c",
            "bbq_biased": "a",
            "p_correct": probs[np.arange(n), label],
            "p_unknown": probs[:, 2],
            "p_biased": probs[:, 0],
        }
    )
    occupations = [f"occ{i}" for i in range(60)]
    p_female = rng.uniform(0.05, 0.9, size=60)
    winogender = pl.DataFrame(
        {
            "benchmark": "winogender",
            "item_id": occupations,
            "category": occupations,
            "cluster": occupations,
            "p_female": p_female,
            "p_male": (1 - p_female) * 0.9,
            "p_neutral": (1 - p_female) * 0.1,
            "wg_bls_pct_female": np.linspace(2, 98, 60),
            "chosen": "female",
        }
    )
    p_yes = rng.uniform(size=2 * students)
    lawschool = pl.DataFrame(
        {
            "benchmark": "lawschool",
            "item_id": [str(i // 2) for i in range(2 * students)],
            "variant": ["Black", "white"] * students,
            "sample": pl.Series([0] * (2 * students), dtype=pl.Int32),
            "cluster": [str(i // 2) for i in range(2 * students)],
            "p_yes": p_yes,
            "chosen": np.where(p_yes > 0.5, "yes", "no"),
        }
    )
    return pl.concat([bbq, winogender, lawschool], how="diagonal_relaxed")


def samples_table(models: int, conditions: int, students: int) -> pl.DataFrame:
    rng = np.random.default_rng(0)
    frames = []
    for m in range(models):
        labels = json.dumps({"params_b": round(0.5 * 3**m, 2)})
        for condition in CONDITIONS[:conditions]:
            identity = {"model": f"m{m}", "model_labels": labels, "condition": condition}
            frames.append(_cell(rng, students).with_columns(**{k: pl.lit(v) for k, v in identity.items()}))
    return pl.concat(frames, how="diagonal_relaxed")


def _median_seconds(run: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=5)
    parser.add_argument("--conditions", type=int, default=3, choices=range(1, len(CONDITIONS) + 1))
    parser.add_argument("--students", type=int, default=2000)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    from evals.metrics import compute_metrics
    from service.report import render_report

    samples = samples_table(args.models, args.conditions, args.students)
    plain, _ = _median_seconds(lambda: compute_metrics(samples, resamples=args.resamples, baseline=None), args.repeat)
    full, metrics = _median_seconds(lambda: compute_metrics(samples, resamples=args.resamples), args.repeat)
    document = {"job_id": "bench", "spec": {"name": "bench"}}
    render, page = _median_seconds(lambda: render_report(metrics, document), args.repeat)
    figures = {
        "samples_rows": samples.height,
        "metrics_rows": metrics.height,
        "effect_rows": metrics.filter(pl.col("baseline").is_not_null()).height,
        "metrics_s": round(plain, 2),
        "metrics_with_effects_s": round(full, 2),
        "effects_s": round(full - plain, 2),
        "report_s": round(render, 2),
        "report_kib": round(len(page.encode()) / 1024),
        "svg_figures": page.count("<svg "),
    }
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key:>24}  {value}")
    return figures


if __name__ == "__main__":
    main()
