"""Custom benchmarks reuse the study's designs: written over the study's own rows, each kind renders the
built-in benchmark's prompts byte for byte and computes the same metrics from the same scores.

The data files are written at test time from the shared datasets (read in place, never copied into the
repository), as a user would export their own rows.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from pydantic import TypeAdapter

from evals import bbq, lawschool, winogender
from evals.conditions import (
    LAWSCHOOL_COT_LEAD_IN,
    LAWSCHOOL_INSTRUCTION,
    LAWSCHOOL_QUESTION,
    WINOGENDER_COT_LEAD_IN,
    WINOGENDER_INSTRUCTION,
    WINOGENDER_QUESTION,
)
from evals.custom import LOCAL_ACCESS, CustomBenchmark, custom_benchmark
from evals.datasets import DatasetSources
from evals.metrics import compute_metrics
from evals.prompts import EvalPrompt
from evals.protocol import Benchmark
from evals.scoring import AnswerScores
from schemas.custom import CustomBenchmarkSpec
from schemas.spec import BbqSpec, LawSchoolSpec, WinogenderSpec

SPEC = TypeAdapter(CustomBenchmarkSpec)
CONDITIONS = ("Q", "Q+IF", "Q+IF+CoT")


def _write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


def _write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> str:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return str(path)


def _same_prompts(ours: Sequence[EvalPrompt], theirs: Sequence[EvalPrompt]) -> None:
    assert len(ours) == len(theirs)
    for mine, study in zip(ours, theirs, strict=True):
        assert mine.turns == study.turns
        assert mine.candidates == study.candidates
        assert (mine.item_id, mine.variant, mine.cluster, mine.category) == (
            study.item_id,
            study.variant,
            study.cluster,
            study.category,
        )


def _scored_frame(benchmark: Benchmark, prompts: Sequence[EvalPrompt], seed: int = 0) -> pl.DataFrame:
    """Samples rows with random (seeded) answer probabilities, the same for both benchmarks' prompts."""
    rng = np.random.default_rng(seed)
    rows = []
    for prompt in prompts:
        probs = rng.dirichlet(np.ones(len(prompt.candidates)))
        labels = tuple(c.label for c in prompt.candidates)
        scores = AnswerScores(labels, tuple(np.log(probs)), tuple(probs), 1.0)
        rows.append(
            {
                "benchmark": benchmark.name,
                "model": "m",
                "model_labels": "{}",
                "condition": "Q",
                "item_id": prompt.item_id,
                "variant": prompt.variant,
                "sample": 0,
                "category": prompt.category,
                "cluster": prompt.cluster,
                "chosen": scores.chosen,
                "candidate_probs": list(probs),
                **benchmark.sample_columns(prompt, scores),
            }
        )
    return pl.DataFrame(rows, infer_schema_length=None)


def _same_metrics(custom: CustomBenchmark, ours: pl.DataFrame, study: pl.DataFrame) -> None:
    # no bootstrap: its seed includes the benchmark name; values, Fisher-z intervals and counts must agree
    mine = compute_metrics(ours, resamples=0, benchmarks={custom.name: custom})
    reference = compute_metrics(study, resamples=0)
    shared = reference.join(mine, on=["slice", "metric", "method", "ci_method"], how="left", suffix="_custom")
    assert shared.height == reference.height
    for column in ("value", "ci_low", "ci_high", "n", "n_clusters", "n_excluded"):
        assert np.allclose(shared[column].to_numpy(), shared[f"{column}_custom"].to_numpy(), equal_nan=True), column


def test_multiple_choice_over_bbq_rows_is_bbq(tmp_path: Path, data_dir: Path) -> None:
    items = bbq.load_items(BbqSpec(categories=["Age", "Religion"], limit=30), DatasetSources(data_dir), 0)
    rows = [
        {
            "id": item.item_id,
            "template": item.cluster,
            "category": item.category,
            "context": item.context,
            "question": item.question,
            **{f"ans{k}": text for k, text in enumerate(item.answers)},
            "context_condition": item.context_condition,
            "label": item.label,
            "unknown": "abc"[item.unknown],  # letters and indices are both accepted
            "biased": "" if item.biased is None else item.biased,
        }
        for item in items
    ]
    spec = SPEC.validate_python(
        {
            "name": "bbq_again",
            "kind": "multiple_choice",
            "data": _write_jsonl(tmp_path / "rows.jsonl", rows),
            "question": "{context} {question} {options}.",
            "options": ["{ans0}", "{ans1}", "{ans2}"],
            "id_column": "id",
            "cluster_column": "template",
            "category_column": "category",
            "context_column": "context_condition",
            "correct_column": "label",
            "unknown_column": "unknown",
            "biased_column": "biased",
        }
    )
    custom = custom_benchmark(spec, LOCAL_ACCESS)
    loaded = custom.load_items()
    for name in CONDITIONS:
        ours = [p for item in loaded for p in custom.render(item, custom.conditions[name])]
        _same_prompts(ours, [p for item in items for p in bbq.render(item, bbq.BBQ.conditions[name])])
    ours = [p for item in loaded for p in custom.render(item, custom.conditions["Q"])]
    study = [p for item in items for p in bbq.render(item, bbq.BBQ.conditions["Q"])]
    _same_metrics(custom, _scored_frame(custom, ours), _scored_frame(bbq.BBQ, study))


def test_paired_decision_over_lawschool_rows_is_lawschool(tmp_path: Path, data_dir: Path) -> None:
    students = lawschool.load_items(LawSchoolSpec(limit=25), DatasetSources(data_dir), 0)
    rows = [
        {"student": s.row_id, "race": race, "sex": s.sex, "lsat": s.lsat_text, "gpa": s.ugpa}
        for s in students
        for race in ("white", "Black")  # file order does not matter: pairs are asked first variant first
    ]
    question = LAWSCHOOL_QUESTION.replace("{gpa}", "{gpa:.1f}") + " {instruction} " + lawschool.LAWSCHOOL_ASK
    spec = SPEC.validate_python(
        {
            "name": "admissions",
            "kind": "paired_decision",
            "data": _write_csv(tmp_path / "students.csv", rows),
            "question": question,
            "instruction": LAWSCHOOL_INSTRUCTION,
            "cot_lead_in": LAWSCHOOL_COT_LEAD_IN,
            "pair_column": "student",
            "variant_column": "race",
            "variants": ["Black", "white"],
        }
    )
    custom = custom_benchmark(spec, LOCAL_ACCESS)
    loaded = custom.load_items()
    for name in CONDITIONS:
        ours = [p for item in loaded for p in custom.render(item, custom.conditions[name])]
        _same_prompts(ours, [p for s in students for p in lawschool.render(s, lawschool.LAWSCHOOL.conditions[name])])
    ours = [p for item in loaded for p in custom.render(item, custom.conditions["Q"])]
    study = [p for s in students for p in lawschool.render(s, lawschool.LAWSCHOOL.conditions["Q"])]
    _same_metrics(custom, _scored_frame(custom, ours), _scored_frame(lawschool.LAWSCHOOL, study))


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_correlation_over_winogender_rows_is_winogender(tmp_path: Path, data_dir: Path, fmt: str) -> None:
    items = winogender.load_items(WinogenderSpec(), DatasetSources(data_dir), 0)
    assert not any(item.blank_starts_sentence for item in items)  # one form per pronoun suffices here
    rows = [
        {
            "occupation": item.occupation,
            "sentence": item.sentence,
            "prefix": item.prefix,
            **dict(zip(("she", "he", "they"), winogender.PRONOUNS[item.pronoun_case], strict=True)),
            "share": item.bls_pct_female / 100,
            "female_pct": item.female_pct,
            "male_pct": 100 - item.female_pct,
        }
        for item in items
    ]
    if fmt == "csv":
        data = _write_csv(tmp_path / "occupations.csv", rows)
    else:
        data = str(tmp_path / "occupations.parquet")
        pl.DataFrame(rows).write_parquet(data)
    spec = SPEC.validate_python(
        {
            "name": "pronouns",
            "kind": "correlation",
            "data": data,
            "question": WINOGENDER_QUESTION,
            "answer_prefix": "{prefix}",
            "instruction": WINOGENDER_INSTRUCTION,
            "cot_lead_in": WINOGENDER_COT_LEAD_IN,
            "options": [
                {"label": "female", "forms": [" {she}"]},
                {"label": "male", "forms": [" {he}"]},
                {"label": "neutral", "forms": [" {they}"]},
            ],
            "target": "female",
            "reference_column": "share",
            "id_column": "occupation",
            "category_column": "occupation",
            "match_stats": winogender.WINOGENDER_CONDITIONS["Q+MatchStats"].instruction,
        }
    )
    custom = custom_benchmark(spec, LOCAL_ACCESS)
    loaded = custom.load_items()
    for name in (*CONDITIONS, "Q+MatchStats"):
        ours = [p for item in loaded for p in custom.render(item, custom.conditions[name])]
        _same_prompts(
            ours, [p for item in items for p in winogender.render(item, winogender.WINOGENDER.conditions[name])]
        )
    ours = [p for item in loaded for p in custom.render(item, custom.conditions["Q"])]
    study = [p for item in items for p in winogender.render(item, winogender.WINOGENDER.conditions["Q"])]
    _same_metrics(custom, _scored_frame(custom, ours), _scored_frame(winogender.WINOGENDER, study))
