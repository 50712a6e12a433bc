"""Builders of small samples tables for the metrics tests (columns typed as in SAMPLES_SCHEMA)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import polars as pl
import pyarrow as pa
import pytest

from schemas.tables import SAMPLES_SCHEMA

IDENTITY = {"model": "m", "model_labels": "{}", "condition": "Q"}
LABELS = ("a", "b", "c")

Rows = Sequence[dict[str, Any]]


def samples_frame(rows: Rows) -> pl.DataFrame:
    """A polars frame with SAMPLES_SCHEMA's types for the columns the rows name."""
    columns = list(dict.fromkeys(name for row in rows for name in row))
    schema = pa.schema([SAMPLES_SCHEMA.field(name).with_nullable(True) for name in columns])
    frame = pl.from_arrow(pa.Table.from_pylist([dict(row) for row in rows], schema=schema))
    assert isinstance(frame, pl.DataFrame)
    return frame


def bbq_row(
    probs: tuple[float, float, float],
    *,
    context: str,
    label: str,
    cluster: str,
    category: str = "Age",
    unknown: str = "c",
    biased: str | None = "a",
    **identity: str,
) -> dict[str, Any]:
    """One BBQ samples row; chosen is the argmax of ``probs`` (over a, b, c)."""
    p = dict(zip(LABELS, probs, strict=True))
    return {
        **IDENTITY,
        "benchmark": "bbq",
        **identity,
        "category": category,
        "cluster": cluster,
        "chosen": max(LABELS, key=p.__getitem__),
        "bbq_context_condition": context,
        "bbq_label": label,
        "bbq_unknown": unknown,
        "bbq_biased": biased,
        "p_correct": p[label],
        "p_unknown": p[unknown],
        "p_biased": None if biased is None else p[biased],
    }


def winogender_row(occupation: str, p_female: float, p_male: float, bls: float, **identity: str) -> dict[str, Any]:
    return {
        **IDENTITY,
        "benchmark": "winogender",
        **identity,
        "item_id": occupation,
        "category": occupation,
        "cluster": occupation,
        "p_female": p_female,
        "p_male": p_male,
        "p_neutral": 1.0 - p_female - p_male,
        "wg_bls_pct_female": bls,
    }


def lawschool_rows(
    student: str, p_yes_black: float, p_yes_white: float, *, sample: int = 0, **identity: str
) -> list[dict[str, Any]]:
    """The two rows of one student (Black, white); chosen = yes when p_yes > 0.5."""
    return [
        {
            **IDENTITY,
            "benchmark": "lawschool",
            **identity,
            "item_id": student,
            "variant": variant,
            "sample": sample,
            "cluster": student,
            "p_yes": p_yes,
            "chosen": "yes" if p_yes > 0.5 else "no",
        }
        for variant, p_yes in (("Black", p_yes_black), ("white", p_yes_white))
    ]


def metric(frame: pl.DataFrame, name: str, *, slice_: str = "overall", **where: str) -> dict[str, Any]:
    """The one row of ``frame`` for metric ``name`` (and the given column values)."""
    selected = frame.filter(pl.col("metric") == name, pl.col("slice") == slice_)
    for column, value in where.items():
        selected = selected.filter(pl.col(column) == value)
    assert selected.height == 1, f"expected one {name} row for {slice_} {where}, got {selected.height}"
    return selected.row(0, named=True)


@pytest.fixture
def make_frame() -> Callable[[Rows], pl.DataFrame]:
    return samples_frame


@pytest.fixture
def make_bbq_row() -> Callable[..., dict[str, Any]]:
    return bbq_row


@pytest.fixture
def make_winogender_row() -> Callable[..., dict[str, Any]]:
    return winogender_row


@pytest.fixture
def make_lawschool_rows() -> Callable[..., list[dict[str, Any]]]:
    return lawschool_rows


@pytest.fixture
def pick() -> Callable[..., dict[str, Any]]:
    return metric
