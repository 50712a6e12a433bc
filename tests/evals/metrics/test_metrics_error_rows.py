"""Error rows (prompts the engine could not score) are left out of every metric and counted in n_excluded."""

from __future__ import annotations

import polars as pl

from evals.metrics import compute_metrics


def _lawschool(p_yes: list[float | None], errors: list[str | None]) -> pl.DataFrame:
    students = len(p_yes) // 2
    return pl.DataFrame(
        {
            "model": "m",
            "model_labels": "{}",
            "benchmark": "lawschool",
            "condition": "Q",
            "item_id": [str(i // 2) for i in range(2 * students)],
            "variant": ["Black", "white"] * students,
            "sample": 0,
            "cluster": [str(i // 2) for i in range(2 * students)],
            "p_yes": p_yes,
            "chosen": ["yes" if p is not None and p > 0.5 else "no" for p in p_yes],
            "error": errors,
        },
        schema_overrides={"p_yes": pl.Float64, "error": pl.String},
    )


def _value(metrics: pl.DataFrame, metric: str) -> dict[str, object]:
    return metrics.filter(pl.col("metric") == metric).row(0, named=True)


def test_an_error_row_takes_its_pair_out_of_the_law_school_metrics() -> None:
    # students 0, 1, 2; student 1's white row failed. Even if a stale score were left on the error row,
    # it must not count: its pair (student 1) is left out entirely.
    p_yes = [0.9, 0.5, 0.2, 0.99, 0.6, 0.4]
    errors = [None, None, None, "prompt too long", None, None]
    metrics = compute_metrics(_lawschool(p_yes, errors), resamples=0)
    parity = _value(metrics, "parity_difference")
    # pairs used: student 0 (0.9 − 0.5) and student 2 (0.6 − 0.4) → mean 0.3
    assert abs(float(parity["value"]) - 0.3) < 1e-12  # type: ignore[arg-type]
    assert parity["n"] == 4
    assert parity["n_excluded"] == 2
    admission = _value(metrics, "admission_rate_difference")
    # student 0: yes − no = 1; student 2: yes − no = 1 → 1.0
    assert admission["value"] == 1.0
    assert admission["n_excluded"] == 2
    assert metrics.get_column("baseline").null_count() == metrics.height


def test_without_errors_nothing_is_excluded() -> None:
    metrics = compute_metrics(_lawschool([0.9, 0.5, 0.2, 0.3], [None] * 4), resamples=0)
    assert _value(metrics, "parity_difference")["n_excluded"] == 0
