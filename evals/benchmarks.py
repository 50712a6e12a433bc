"""The benchmark registry, and the plan of a job's prompts.

Benchmarks (:class:`evals.protocol.Benchmark`) come from three places:

- the study's three, built in: :data:`evals.bbq.BBQ`, :data:`evals.winogender.WINOGENDER`,
  :data:`evals.lawschool.LAWSCHOOL`;
- a job's own benchmarks over data files (``benchmarks.custom``): :mod:`evals.custom`;
- installed packages, through the ``moralscope.benchmarks`` entry point group: each entry point's name is
  the benchmark's name and its object a ``Benchmark`` instance (or a class to instantiate). A package
  declares it in its ``pyproject.toml``::

      [project.entry-points."moralscope.benchmarks"]
      toxicity_probe = "my_package.probe:BENCHMARK"

  Plugins are discovered once per process (:func:`reload_plugins` looks again) and loaded when first named.

:func:`job_benchmarks` resolves a job spec into its benchmarks, in the order results list them, with
each one's settings validated (a plugin's against its own ``spec_model``): that is where a plugin key is
checked, at submission and wherever a spec is loaded. Everything else (the runner, limits, the report,
the CLI) goes through it.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import pyarrow as pa

from evals.bbq import BBQ
from evals.conditions import conditions_for
from evals.custom import DataAccess, custom_benchmark
from evals.datasets import DatasetSources
from evals.lawschool import LAWSCHOOL
from evals.prompts import EvalPrompt
from evals.protocol import Benchmark
from evals.winogender import WINOGENDER
from schemas.benchmark_specs import BENCHMARK_NAME_PATTERN, RESERVED_NAMES
from schemas.errors import InvalidInputError
from schemas.spec import JobSpec
from schemas.tables import SAMPLES_SCHEMA, samples_schema

__all__ = [
    "ENTRY_POINT_GROUP",
    "Benchmark",
    "SelectedBenchmark",
    "benchmark_prompts",
    "builtin_benchmarks",
    "get_benchmark",
    "job_benchmarks",
    "job_samples_schema",
    "plan_prompts",
    "plugin_names",
    "registered_names",
    "reload_plugins",
]

logger = logging.getLogger("moralscope.benchmarks")

ENTRY_POINT_GROUP = "moralscope.benchmarks"
_BUILTIN: dict[str, Benchmark] = {b.name: b for b in (BBQ, WINOGENDER, LAWSCHOOL)}
_NAME = re.compile(BENCHMARK_NAME_PATTERN)


def builtin_benchmarks() -> dict[str, Benchmark]:
    """The study's benchmarks, in the order results list them."""
    return dict(_BUILTIN)


@functools.cache
def _plugin_entry_points() -> dict[str, EntryPoint]:
    found: dict[str, EntryPoint] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name in RESERVED_NAMES or not _NAME.fullmatch(entry.name):
            logger.warning(
                "ignoring the %s entry point %r (%s): a plugin benchmark's name must match %s and not be one of %s",
                ENTRY_POINT_GROUP,
                entry.name,
                entry.value,
                BENCHMARK_NAME_PATTERN,
                ", ".join(sorted(RESERVED_NAMES)),
            )
            continue
        found.setdefault(entry.name, entry)  # the first on sys.path wins, as for imports
    return found


def plugin_names() -> tuple[str, ...]:
    """Names of the installed plugin benchmarks (not loaded), sorted."""
    return tuple(sorted(_plugin_entry_points()))


def registered_names() -> tuple[str, ...]:
    """Every benchmark a spec can select by name: the built-in ones, then the plugins."""
    return (*_BUILTIN, *plugin_names())


def reload_plugins() -> None:
    """Forget discovered and loaded plugins (after installing one into a running process)."""
    _plugin_entry_points.cache_clear()
    _load_plugin.cache_clear()


@functools.cache
def _load_plugin(name: str) -> Benchmark:
    entry = _plugin_entry_points()[name]
    where = f"plugin benchmark {name!r} (entry point {entry.value!r} of group {ENTRY_POINT_GROUP})"
    try:
        loaded: Any = entry.load()
        benchmark = loaded() if isinstance(loaded, type) and issubclass(loaded, Benchmark) else loaded
    except Exception as exc:
        raise InvalidInputError(f"{where} cannot be loaded: {type(exc).__name__}: {exc}", field="benchmarks") from exc
    if not isinstance(benchmark, Benchmark):
        raise InvalidInputError(
            f"{where} is a {type(benchmark).__name__}, not an evals.protocol.Benchmark", field="benchmarks"
        )
    if benchmark.name != name:
        raise InvalidInputError(
            f"{where} calls itself {benchmark.name!r}; the two names must agree", field="benchmarks"
        )
    for column in benchmark.columns:
        if column.name in SAMPLES_SCHEMA.names and not column.equals(SAMPLES_SCHEMA.field(column.name)):
            raise InvalidInputError(
                f"{where} redefines the samples column {column.name!r}; reuse the built-in field or rename it",
                field="benchmarks",
            )
    return benchmark


def get_benchmark(name: str) -> Benchmark:
    """The built-in or plugin benchmark called ``name``."""
    if name in _BUILTIN:
        return _BUILTIN[name]
    if name in _plugin_entry_points():
        return _load_plugin(name)
    raise InvalidInputError(
        f"unknown benchmark {name!r}: not built in and no installed plugin provides it (entry point group "
        f"{ENTRY_POINT_GROUP}); known: {', '.join(registered_names())}",
        field=f"benchmarks.{name}",
    )


@dataclass(frozen=True)
class SelectedBenchmark:
    """A benchmark of a job, with its validated settings."""

    benchmark: Benchmark
    spec: Any

    @property
    def name(self) -> str:
        return self.benchmark.name


def job_benchmarks(job: JobSpec, data: DataAccess | None = None) -> list[SelectedBenchmark]:
    """The job's benchmarks in the order results list them, each with its validated settings.

    Custom benchmarks read their data files through ``data`` when their items are first needed (None: they
    cannot read any; what is pinned in the spec still plans them). Raises InvalidInputError naming
    ``benchmarks.<name>[.<field>]`` for a plugin that is not installed, cannot be loaded, or whose
    settings are invalid, and for a custom benchmark named like an installed plugin.
    """
    selected = []
    plugins = job.benchmarks.plugins
    for name in job.benchmarks.selected:
        if name in _BUILTIN:
            selected.append(SelectedBenchmark(_BUILTIN[name], getattr(job.benchmarks, name)))
        elif name in plugins:
            benchmark = get_benchmark(name)
            settings = benchmark.validate_spec(plugins[name], field=f"benchmarks.{name}")
            selected.append(SelectedBenchmark(benchmark, settings))
    for index, entry in enumerate(job.benchmarks.custom):
        if entry.name in _plugin_entry_points():
            raise InvalidInputError(
                f"custom benchmark {entry.name!r} has the name of an installed plugin benchmark; choose another name",
                field=f"benchmarks.custom.{index}.name",
            )
        selected.append(SelectedBenchmark(custom_benchmark(entry, data, index=index), entry))
    return selected


def job_samples_schema(benchmarks: Sequence[Benchmark]) -> pa.Schema:
    """The samples table's schema for a job with these benchmarks (``schemas.tables.samples_schema``)."""
    extra: dict[str, pa.Field] = {}
    for benchmark in benchmarks:
        for column in benchmark.columns:
            if column.name in SAMPLES_SCHEMA.names:
                continue
            if column.name in extra and not extra[column.name].equals(column):
                raise InvalidInputError(
                    f"benchmark {benchmark.name!r} declares the samples column {column.name!r} with another type "
                    "than a benchmark before it in this job",
                    field="benchmarks",
                )
            extra.setdefault(column.name, column.with_nullable(True))
    return samples_schema(list(extra.values()))


def benchmark_prompts(
    job: JobSpec, selected: SelectedBenchmark, sources: DatasetSources
) -> dict[str, list[EvalPrompt]]:
    """Every prompt of one of the job's benchmarks, by condition name (in the job's order), items in order;
    the items are read and verified once."""
    benchmark = selected.benchmark
    items = benchmark.load_items(selected.spec, sources, job.seed)
    return {
        condition.name: [prompt for item in items for prompt in benchmark.render(item, condition)]
        for condition in conditions_for(job, benchmark)
    }


def plan_prompts(
    job: JobSpec, benchmark: str, sources: DatasetSources, data: DataAccess | None = None
) -> dict[str, list[EvalPrompt]]:
    """:func:`benchmark_prompts` of the job's benchmark called ``benchmark`` (empty if the job lacks it)."""
    for selected in job_benchmarks(job, data):
        if selected.name == benchmark:
            return benchmark_prompts(job, selected, sources)
    return {}
