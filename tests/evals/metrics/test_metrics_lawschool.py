"""Law-school metrics: paired demographic parity difference (SPEC §5)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import polars as pl
import pytest

from evals.metrics import compute_metrics
from schemas.errors import InvalidInputError

MakeFrame = Callable[[Sequence[dict[str, Any]]], pl.DataFrame]
MakeRow = Callable[..., dict[str, Any]]
MakeRows = Callable[..., list[dict[str, Any]]]
Pick = Callable[..., dict[str, Any]]

# (student, p_yes as Black, p_yes as white)
#   s1  .70 .60  → +.10   chosen yes / yes → 0
#   s2  .40 .60  → −.20   chosen no  / yes → −1
#   s3  .55 .45  → +.10   chosen yes / no  → +1
#   s4  .20 .30  → −.10   chosen no  / no  → 0
# parity difference = (.1 − .2 + .1 − .1) / 4 = −.025; admission-rate difference = 0/4 = 0
# mean p_yes: Black (.7+.4+.55+.2)/4 = .4625, white (.6+.6+.45+.3)/4 = .4875
STUDENTS = [("s1", 0.70, 0.60), ("s2", 0.40, 0.60), ("s3", 0.55, 0.45), ("s4", 0.20, 0.30)]


@pytest.fixture
def table(make_frame: MakeFrame, make_lawschool_rows: MakeRows) -> pl.DataFrame:
    return make_frame([row for student in STUDENTS for row in make_lawschool_rows(*student)])


def test_values_by_hand(table: pl.DataFrame, pick: Pick) -> None:
    metrics = compute_metrics(table, resamples=300)
    parity = pick(metrics, "parity_difference")
    assert parity["value"] == pytest.approx(-0.025)
    assert (parity["method"], parity["n"], parity["n_clusters"], parity["n_excluded"]) == ("expected", 8, 4, 0)
    admission = pick(metrics, "admission_rate_difference")
    assert admission["value"] == pytest.approx(0.0)
    assert admission["method"] == "argmax"
    assert pick(metrics, "mean_p_yes_black")["value"] == pytest.approx(0.4625)
    assert pick(metrics, "mean_p_yes_white")["value"] == pytest.approx(0.4875)
    assert pick(metrics, "mean_p_yes_white")["n"] == 4
    assert parity["ci_low"] <= parity["value"] <= parity["ci_high"]


def test_interval_is_paired(make_frame: MakeFrame, make_lawschool_rows: MakeRows, pick: Pick) -> None:
    # p_yes varies a lot between students but the Black − white difference is always +.05: a paired
    # bootstrap has no spread at all, an unpaired one would be wide.
    levels = [0.1, 0.3, 0.5, 0.7, 0.9, 0.2, 0.4, 0.6]
    frame = make_frame([row for i, p in enumerate(levels) for row in make_lawschool_rows(f"s{i}", p + 0.05, p)])
    parity = pick(compute_metrics(frame, resamples=500), "parity_difference")
    assert parity["value"] == pytest.approx(0.05)
    assert parity["ci_low"] == pytest.approx(0.05)
    assert parity["ci_high"] == pytest.approx(0.05)
    spread = pick(compute_metrics(frame, resamples=500), "mean_p_yes_black")
    assert spread["ci_high"] - spread["ci_low"] > 0.1


def test_several_samples_per_student_pair_by_sample(
    make_frame: MakeFrame, make_lawschool_rows: MakeRows, pick: Pick
) -> None:
    rows = make_lawschool_rows("s1", 0.7, 0.6, sample=0) + make_lawschool_rows("s1", 0.5, 0.6, sample=1)
    rows += make_lawschool_rows("s2", 0.3, 0.3, sample=0) + make_lawschool_rows("s2", 0.3, 0.2, sample=1)
    parity = pick(compute_metrics(make_frame(rows), resamples=100), "parity_difference")
    # (.1 − .1 + 0 + .1) / 4
    assert parity["value"] == pytest.approx(0.025)
    assert (parity["n"], parity["n_clusters"]) == (8, 2)


def test_unpaired_row_raises(make_frame: MakeFrame, make_lawschool_rows: MakeRows) -> None:
    rows = [row for student in STUDENTS for row in make_lawschool_rows(*student)]
    del rows[3]  # s2 as white
    with pytest.raises(
        InvalidInputError, match=r"1 row\(s\) without their counterpart.*item_id='s2' sample=0 has only Black"
    ):
        compute_metrics(make_frame(rows))


def test_duplicate_row_raises(make_frame: MakeFrame, make_lawschool_rows: MakeRows) -> None:
    rows = [row for student in STUDENTS for row in make_lawschool_rows(*student)]
    with pytest.raises(InvalidInputError, match="occur more than once"):
        compute_metrics(make_frame([*rows, rows[0]]))


def test_unknown_variant_raises(make_frame: MakeFrame, make_lawschool_rows: MakeRows) -> None:
    rows = make_lawschool_rows("s1", 0.7, 0.6)
    rows[1]["variant"] = "White"
    with pytest.raises(InvalidInputError, match="variant must be 'Black' or 'white', got 'White'"):
        compute_metrics(make_frame(rows))


def test_missing_p_yes_drops_the_pair_from_expected_metrics(
    make_frame: MakeFrame, make_lawschool_rows: MakeRows, pick: Pick
) -> None:
    rows = [row for student in STUDENTS for row in make_lawschool_rows(*student)]
    rows[0]["p_yes"] = float("nan")  # s1 as Black
    metrics = compute_metrics(make_frame(rows), resamples=0)
    parity = pick(metrics, "parity_difference")
    # (−.2 + .1 − .1) / 3
    assert parity["value"] == pytest.approx(-0.2 / 3)
    assert (parity["n"], parity["n_excluded"], parity["n_clusters"]) == (6, 2, 3)
    assert pick(metrics, "admission_rate_difference")["n"] == 8
