"""Reports across jobs: cells combine where the prompt digests and confidence agree, and the page says which did
not and why."""

from __future__ import annotations

import copy
from typing import Any

import polars as pl
import pytest
from test_report import _metrics

from service.report import JobResults, combined_metrics, render_jobs_report

CELLS = [(b, c) for b in ("winogender", "bbq") for c in ("Q", "Q+IF")]


def _digest(benchmark: str, condition: str, items: str = "i", prompts: str = "p") -> dict[str, Any]:
    return {
        "benchmark": benchmark,
        "condition": condition,
        "items": 12,
        "items_sha256": f"{items}-{benchmark}",
        "prompts_sha256": f"{prompts}-{benchmark}-{condition}",
        "cot": None,
    }


def _job(job_id: str, params_b: float, *, model: str = "smol", **kw: Any) -> JobResults:
    document = {
        "job_id": job_id,
        "spec": {"name": f"size {params_b}", "report": {"sweep_label": None}},
        "prompt_digests": [_digest(b, c) for b, c in CELLS],
    }
    return JobResults(job_id, _metrics({model: {"params_b": params_b}}, **kw), document)


def _cells(metrics: pl.DataFrame, model: str) -> set[tuple[str, str]]:
    mine = metrics.filter((pl.col("model") == model) & pl.col("baseline").is_null())
    return set(mine.select("benchmark", "condition").unique().iter_rows())


def test_jobs_with_agreeing_digests_combine_into_one_sweep() -> None:
    small, large = _job("job_a", 0.135), _job("job_b", 1.7)
    metrics, notes = combined_metrics([small, large])
    assert notes == []
    # both jobs call their model "smol": each keeps its job's id, so the two stay apart
    assert set(metrics["model"]) == {"smol (job_a)", "smol (job_b)"}
    assert metrics.height == small.metrics.height + large.metrics.height
    page = render_jobs_report([small, large])
    assert "Combined from jobs" in page
    assert "job_a" in page
    assert "job_b" in page
    assert '<figure class="sweep headlines" data-benchmark="winogender" data-x="params_b">' in page
    assert 'class="notes"' not in page


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda d: d.update(items_sha256="other", items=3), "different items (3 vs 12)"),
        (lambda d: d.update(prompts_sha256="other"), "different prompt templates or answer candidates"),
        (lambda d: d.update(cot={"max_new_tokens": 8}), "different reasoning sampling settings"),
    ],
)
def test_a_cell_whose_digests_differ_is_left_out_with_its_effects_and_said(change: Any, reason: str) -> None:
    reference, other = _job("job_a", 0.135), _job("job_b", 1.7, model="big")
    for entry in other.document["prompt_digests"]:
        if (entry["benchmark"], entry["condition"]) == ("winogender", "Q+IF"):
            change(entry)
    metrics, notes = combined_metrics([reference, other])
    assert notes == [
        f"Not combined: winogender under Q+IF of job job_b (size 1.7), compared with job job_a (size 0.135): {reason}."
    ]
    assert _cells(metrics, "big") == set(CELLS) - {("winogender", "Q+IF")}
    assert _cells(metrics, "smol") == set(CELLS)
    big_effects = metrics.filter((pl.col("model") == "big") & pl.col("baseline").is_not_null())
    assert set(big_effects["benchmark"]) == {"bbq"}  # winogender's Q+IF − Q went with its Q+IF cell


def test_a_job_without_digests_or_with_another_confidence_is_not_combined() -> None:
    reference = _job("job_a", 0.135)
    old = copy.deepcopy(_job("job_old", 1.7))
    del old.document["prompt_digests"]
    wider = _job("job_c", 7.0, confidence=0.9)
    metrics, notes = combined_metrics([reference, old, wider])
    assert len(notes) == 2 * len(CELLS)
    assert "job job_old has no prompt digests" in notes[0]
    assert "other interval confidence (90% vs 95%)" in notes[-1]
    assert set(metrics["model"]) == {"smol (job_a)"}
    page = render_jobs_report([reference, old, wider])
    assert page.count("<li>Not combined: ") == len(notes)
    assert "interval plots" not in page  # one model left: no sweep, and no note about one
    # a job alone with a cell is its own reference: nothing to check it against
    only, notes = combined_metrics([old])
    assert notes == []
    assert only.height == old.metrics.height
