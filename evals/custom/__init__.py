"""Custom benchmarks: a job's own benchmarks over data files (``benchmarks.custom`` in a job spec).

Each entry of ``benchmarks.custom`` (``schemas.custom``) becomes a :class:`~evals.protocol.Benchmark` of
its kind — :mod:`.multiple_choice` (BBQ's design and metrics), :mod:`.paired_decision` (law school's) or
:mod:`.correlation` (Winogender's) — built by :func:`custom_benchmark` with the caller's
:class:`~evals.custom.files.DataAccess` (what a server lets a job read). :func:`pin_custom_data` reads and
validates every custom file of a job (a submission does it, before the job is stored) and pins each
file's sha256 and row count into the spec, so the job later runs exactly the data that was validated.
"""

from __future__ import annotations

from evals.custom.base import AnyCustomSpec, CustomBenchmark, CustomItem
from evals.custom.correlation import CorrelationBenchmark
from evals.custom.files import LOCAL_ACCESS, DataAccess, DataFile, read_data_file
from evals.custom.multiple_choice import MultipleChoiceBenchmark
from evals.custom.paired_decision import PairedDecisionBenchmark
from schemas.spec import JobSpec

__all__ = [
    "LOCAL_ACCESS",
    "CustomBenchmark",
    "CustomItem",
    "DataAccess",
    "DataFile",
    "custom_benchmark",
    "pin_custom_data",
    "read_data_file",
]

_KINDS: dict[str, type[CustomBenchmark]] = {
    "multiple_choice": MultipleChoiceBenchmark,
    "paired_decision": PairedDecisionBenchmark,
    "correlation": CorrelationBenchmark,
}


def custom_benchmark(spec: AnyCustomSpec, data: DataAccess | None, *, index: int = 0) -> CustomBenchmark:
    """The benchmark of one ``benchmarks.custom`` entry (its data is read when its items are first needed)."""
    return _KINDS[spec.kind](spec, data, index=index)


def pin_custom_data(job: JobSpec, data: DataAccess) -> JobSpec:
    """The job with every custom benchmark's data read, validated and pinned (``sha256``, ``rows``).

    Raises DataError / InvalidInputError naming the file, row and column of the first problem.
    """
    if not job.benchmarks.custom:
        return job
    pinned = []
    for index, entry in enumerate(job.benchmarks.custom):
        benchmark = custom_benchmark(entry, data, index=index)
        rows = len(benchmark.load_items())
        assert benchmark.file is not None  # read by load_items
        pinned.append(entry.model_copy(update={"sha256": benchmark.file.sha256, "rows": rows}))
    benchmarks = job.benchmarks.model_copy(update={"custom": pinned})
    return job.model_copy(update={"benchmarks": benchmarks})
