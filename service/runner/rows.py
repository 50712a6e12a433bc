"""Turning engine results into table rows: reasoning parts and rows of the samples table."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any, NamedTuple

import pyarrow as pa

from evals.benchmarks import get_benchmark
from evals.scoring import combine_forms
from schemas.inference import GenerateResult, ScoreResult
from schemas.tables import SAMPLES_SCHEMA
from service.runner.plan import PlannedRow

REASONING_SCHEMA = pa.schema(
    [
        pa.field("item_key", pa.string(), nullable=False),
        pa.field("sample", pa.int32(), nullable=False),
        pa.field("seed", pa.int64(), nullable=False),
        pa.field("reasoning", pa.string(), nullable=False),
        pa.field("prompt_tokens", pa.int32(), nullable=False),
        pa.field("reasoning_tokens", pa.int32(), nullable=False),
        pa.field("finish_reason", pa.string(), nullable=False),
        pa.field("error", pa.string(), nullable=True),
    ],
    metadata={b"moralscope.table": b"reasoning-part"},
)
"""A reason shard's part: the sampled reasoning of each (item, sample), kept so it is generated once.
``error`` is set (and the text empty) where the engine could not generate; that row's answer is then
an error row. Parts written before the column existed read as error-free."""


class Reasoning(NamedTuple):
    """One sampled reasoning, as the score phase needs it."""

    text: str
    tokens: int
    error: str | None = None


def reasoning_table(rows: Sequence[PlannedRow], seeds: Sequence[int], results: Sequence[GenerateResult]) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {
                "item_key": row.prompt.key,
                "sample": row.sample,
                "seed": seed,
                "reasoning": result.text,
                "prompt_tokens": result.prompt_tokens,
                "reasoning_tokens": result.completion_tokens,
                "finish_reason": result.finish_reason,
                "error": result.error,
            }
            for row, seed, result in zip(rows, seeds, results, strict=True)
        ],
        schema=REASONING_SCHEMA,
    )


def reasoning_by_row(table: pa.Table) -> dict[tuple[str, int], Reasoning]:
    """(item key, sample) → the reasoning of a reasoning part."""
    errors = table.column("error").to_pylist() if "error" in table.column_names else [None] * table.num_rows
    return {
        (key, sample): Reasoning(text, tokens, error)
        for key, sample, text, tokens, error in zip(
            table.column("item_key").to_pylist(),
            table.column("sample").to_pylist(),
            table.column("reasoning").to_pylist(),
            table.column("reasoning_tokens").to_pylist(),
            errors,
            strict=True,
        )
    }


def model_labels_json(labels: dict[str, Any]) -> str:
    return json.dumps(labels, sort_keys=True, separators=(",", ":"))


def sample_row(
    *,
    model: str,
    model_labels: str,
    row: PlannedRow,
    prompt_text: str,
    result: ScoreResult,
    reasoning: Reasoning | None,
) -> dict[str, Any]:
    """One row of the samples table (common columns, then the benchmark's own).

    A result with an ``error`` becomes an error row: the item's columns, the error, and null scores.
    """
    prompt = row.prompt
    scores = None if result.error is not None else combine_forms(prompt.candidates, result.continuations)
    benchmark = row.benchmark or get_benchmark(prompt.benchmark)
    columns = dict(benchmark.sample_columns(prompt, scores))
    columns.update(
        model=model,
        model_labels=model_labels,
        benchmark=prompt.benchmark,
        condition=prompt.condition,
        item_id=prompt.item_id,
        variant=prompt.variant,
        sample=row.sample,
        category=prompt.category,
        cluster=prompt.cluster,
        prompt=prompt_text,
        prompt_sha256=hashlib.sha256(prompt_text.encode()).hexdigest(),
        reasoning=reasoning.text if reasoning and reasoning.error is None else None,
        candidates=[c.label for c in prompt.candidates],
        candidate_logprobs=list(scores.logprobs) if scores else None,
        candidate_probs=list(scores.probs) if scores else None,
        candidate_mass=scores.mass if scores else None,
        chosen=scores.chosen if scores else None,
        error=result.error,
        prompt_tokens=result.prompt_tokens,
        continuation_tokens=result.continuation_tokens,
        computed_tokens=result.tokens_computed,
        reasoning_tokens=reasoning.tokens if reasoning and reasoning.error is None else None,
    )
    return columns


def samples_table(rows: list[dict[str, Any]], schema: pa.Schema = SAMPLES_SCHEMA) -> pa.Table:
    """Rows → a table of the job's samples ``schema`` (an unknown or missing required column is an error)."""
    unknown = sorted({name for row in rows for name in row} - set(schema.names))
    if unknown:
        raise ValueError(f"sample rows have columns that are not in the samples schema: {', '.join(unknown)}")
    return pa.Table.from_pylist(rows, schema=schema)
