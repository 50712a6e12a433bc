"""The shape every benchmark module has, and the plan of a job's prompts.

Each of ``evals.bbq``, ``evals.winogender`` and ``evals.lawschool`` provides the same functions:

- ``load_items(spec, sources, seed) -> list[Item]``: the selected items, in file order;
- ``render(item, condition) -> list[EvalPrompt]``: one prompt per variant (law school: Black, white);
- ``sample_columns(prompt, scores) -> dict``: the benchmark's columns of a samples row.

Its metrics live in ``evals.metrics.<name>``; :func:`evals.metrics.compute_metrics` turns a samples
frame of any benchmarks into rows of the metrics table.

The runner only ever talks to :class:`Benchmark`, so adding a benchmark means adding one module.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import import_module
from typing import Any

from evals.conditions import Condition, conditions_for
from evals.datasets import DatasetSources
from evals.prompts import EvalPrompt
from evals.scoring import AnswerScores
from schemas.spec import BENCHMARKS, JobSpec


@dataclass(frozen=True)
class Benchmark:
    """A benchmark's functions, looked up by name."""

    name: str
    load_items: Callable[[Any, DatasetSources, int], Sequence[Any]]
    render: Callable[[Any, Condition], list[EvalPrompt]]
    sample_columns: Callable[[EvalPrompt, AnswerScores | None], dict[str, Any]]


def get_benchmark(name: str) -> Benchmark:
    """The benchmark called ``name`` (bbq, winogender, lawschool)."""
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}")
    module = import_module(f"evals.{name}")
    return Benchmark(name, module.load_items, module.render, module.sample_columns)


def plan_prompts(job: JobSpec, benchmark: str, sources: DatasetSources) -> dict[str, list[EvalPrompt]]:
    """Every prompt of one benchmark, by condition name (in the job's order), items in file order."""
    bench = get_benchmark(benchmark)
    settings = getattr(job.benchmarks, benchmark)
    if settings is None:
        return {}
    items = bench.load_items(settings, sources, job.seed)
    return {
        condition.name: [prompt for item in items for prompt in bench.render(item, condition)]
        for condition in conditions_for(job, benchmark)
    }
