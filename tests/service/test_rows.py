"""Rows of the samples table built from engine results, including error rows."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from evals import bbq
from evals.conditions import builtin_condition
from evals.datasets import DatasetSources
from schemas.inference import ContinuationScore, ScoreResult
from schemas.spec import BbqSpec
from schemas.tables import SAMPLES_SCHEMA
from service.runner.plan import PlannedRow
from service.runner.rows import sample_row, samples_table


def _row(data_dir: Path) -> PlannedRow:
    item = bbq.load_items(BbqSpec(categories=["Age"], limit=1), DatasetSources(data_dir), 0)[0]
    return PlannedRow(bbq.render(item, builtin_condition("bbq", "Q"))[0], 0)


def test_an_error_result_becomes_a_row_with_its_error_and_null_scores(data_dir: Path) -> None:
    row = _row(data_dir)
    result = ScoreResult.failed("3000 prompt tokens exceed the model's 2048 positions", prompt_tokens=3000)
    values = sample_row(model="m", model_labels="{}", row=row, prompt_text="p", result=result, reasoning=None)
    assert values["error"] == "3000 prompt tokens exceed the model's 2048 positions"
    assert values["chosen"] is None
    assert values["candidate_probs"] is None
    assert values["p_correct"] is None
    assert values["bbq_label"] in ("a", "b", "c")  # the item's own columns are kept
    assert values["candidates"] == ["a", "b", "c"]
    assert values["computed_tokens"] == 0
    table = samples_table([values])
    assert table.schema.equals(SAMPLES_SCHEMA, check_metadata=True)
    assert table.column("error").to_pylist() == [values["error"]]


def test_a_scored_row_reports_requested_and_computed_tokens(data_dir: Path) -> None:
    row = _row(data_dir)
    scores = tuple(ContinuationScore(-1.0 - i, (100 + i, 7)) for i in range(6))
    result = ScoreResult(scores, prompt_tokens=40, computed_tokens=15)
    values = sample_row(model="m", model_labels="{}", row=row, prompt_text="p", result=result, reasoning=None)
    assert values["error"] is None
    assert values["chosen"] == "a"
    assert (values["prompt_tokens"], values["continuation_tokens"], values["computed_tokens"]) == (40, 12, 15)
    uncounted = ScoreResult(scores, prompt_tokens=40)  # an engine that does not report: everything computed
    assert (
        sample_row(model="m", model_labels="{}", row=row, prompt_text="p", result=uncounted, reasoning=None)[
            "computed_tokens"
        ]
        == 52
    )
    assert isinstance(samples_table([values]), pa.Table)
