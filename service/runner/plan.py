"""A job's work, cut into shards: pure functions of the spec and the planned prompts.

Rows of one (model, benchmark, condition) are the condition's prompts in the benchmark's item order,
each repeated ``cot.samples`` times for chain-of-thought conditions (sample 0, 1, …). Shard ``k`` is
rows ``[k·shard_size, (k+1)·shard_size)``; a CoT condition has a ``reason`` shard and a ``score`` shard
with the same rows. The samples table is the score shards' rows in the order models (spec order) →
benchmarks (the job's order: ``evals.benchmarks.job_benchmarks``) → conditions (spec order) → shards →
rows, so it is the same whatever order shards finish in and however often the job was restarted. Its
schema is the job's (``evals.benchmarks.job_samples_schema``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import pyarrow as pa

from evals.benchmarks import job_benchmarks, job_samples_schema
from evals.prompts import EvalPrompt
from evals.protocol import Benchmark
from schemas.spec import JobSpec
from schemas.tables import SAMPLES_SCHEMA
from service.store import ShardKey

REASON = "reason"
SCORE = "score"


@dataclass(frozen=True, slots=True)
class PlannedRow:
    """One row of the samples table before it is computed."""

    prompt: EvalPrompt
    sample: int
    benchmark: Benchmark | None = None
    """The benchmark that rendered the prompt (None: the registered one of that name)."""


@dataclass(frozen=True)
class ConditionPlan:
    """The rows of one benchmark under one condition (the same for every model)."""

    benchmark: str
    condition: str
    condition_index: int
    """The condition's position in the spec (part file names use it: condition names may hold any text)."""
    is_cot: bool
    rows: list[PlannedRow] = field(repr=False)
    samples_schema: pa.Schema = field(default=SAMPLES_SCHEMA, repr=False)
    """The job's samples table schema: every part is written with it."""

    def shard_rows(self, shard_size: int) -> list[list[PlannedRow]]:
        return [self.rows[start : start + shard_size] for start in range(0, len(self.rows), shard_size)]


@dataclass(frozen=True)
class Shard:
    """A shard of work for one model: its key in the store and its rows."""

    key: ShardKey
    plan: ConditionPlan
    rows: list[PlannedRow] = field(repr=False)


@dataclass(frozen=True)
class JobPlan:
    """Every (benchmark, condition) of a job with its rows, in the samples table's order."""

    conditions: list[ConditionPlan]
    shard_size: int
    samples_schema: pa.Schema = SAMPLES_SCHEMA
    """The job's samples table schema (each ConditionPlan carries it too)."""

    def shards(self, model: int, phase: str) -> Iterator[Shard]:
        """The shards of one model in one phase (``reason`` shards exist for CoT conditions only), in order."""
        for plan in self.conditions:
            if phase == REASON and not plan.is_cot:
                continue
            for index, rows in enumerate(plan.shard_rows(self.shard_size)):
                yield Shard(ShardKey(model, plan.benchmark, plan.condition, phase, index), plan, rows)

    def all_shards(self, models: int) -> list[Shard]:
        return [shard for model in range(models) for phase in (REASON, SCORE) for shard in self.shards(model, phase)]

    @property
    def rows_per_model(self) -> int:
        return sum(len(plan.rows) for plan in self.conditions)


def build_plan(
    spec: JobSpec,
    prompts: dict[str, dict[str, list[EvalPrompt]]],
    benchmarks: Sequence[Benchmark] | None = None,
) -> JobPlan:
    """The plan from ``prompts[benchmark][condition]`` (as :func:`evals.benchmarks.plan_prompts` returns them).

    ``benchmarks``: the job's, in its order (default: :func:`evals.benchmarks.job_benchmarks` of ``spec``).
    """
    if benchmarks is None:
        benchmarks = [selected.benchmark for selected in job_benchmarks(spec)]
    condition_index = {name: i for i, name in enumerate(spec.condition_names)}
    schema = job_samples_schema(benchmarks)
    conditions = []
    for benchmark in benchmarks:
        for condition, condition_prompts in prompts.get(benchmark.name, {}).items():
            is_cot = any(p.is_cot for p in condition_prompts)
            samples = spec.cot.samples if is_cot else 1
            rows = [PlannedRow(p, s, benchmark) for p in condition_prompts for s in range(samples)]
            index = condition_index[condition]
            conditions.append(ConditionPlan(benchmark.name, condition, index, is_cot, rows, schema))
    return JobPlan(conditions, spec.shard_size, schema)


def part_path(key: ShardKey, condition_index: int) -> str:
    """Where a shard's Parquet part lives under the job's location."""
    return f"parts/{key.phase}/m{key.model:03d}/{key.benchmark}/c{condition_index:02d}/{key.shard:06d}.parquet"


def reasoning_seed(job_seed: int, model: str, benchmark: str, condition: str, item_key: str, sample: int) -> int:
    """The sampling seed of one piece of reasoning: stable across runs, processes and machines.

    A hash (not Python's salted ``hash``) of everything that identifies the sample, so adding a model or a
    condition to a job changes no other sample's reasoning. 31 bits: every engine accepts it.
    """
    material = "\x1f".join((str(job_seed), model, benchmark, condition, item_key, str(sample)))
    return int.from_bytes(hashlib.sha256(material.encode()).digest()[:8], "big") % (2**31 - 1)
