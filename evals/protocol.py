"""The ``Benchmark`` protocol: everything moralscope knows about one benchmark, declared in one place.

A benchmark is one object. The study's three are :data:`evals.bbq.BBQ`, :data:`evals.winogender.WINOGENDER`
and :data:`evals.lawschool.LAWSCHOOL`; an installed package adds one through the ``moralscope.benchmarks``
entry point group; a job's ``benchmarks.custom`` entries become objects of :mod:`evals.custom`. Nothing
outside ``evals`` names a benchmark: the service, CLI, limits, planner and report ask
:mod:`evals.benchmarks` (the registry) for the job's benchmarks and use only what is declared here.

What a benchmark declares:

========================  =================================================================================
``name``, ``title``       its key in specs and result rows (``bbq``), and its heading in reports
``spec_model``            the pydantic model of its settings (``benchmarks.<name>`` in a job spec)
``planned_items(spec)``   rows one condition plans (items × variants), for limits — without reading data
                          where it can (built-ins use the dataset registry's row counts)
``load_items``            its selected items, read and verified (sha256) through ``DatasetSources``
``data_files``            the data files those items came from, for ``spec.json`` (provenance)
``conditions``            the built-in conditions that apply to it, with its own sentences
``render(item, cond)``    the item's prompts under a condition: it owns where the instruction goes, its
                          CoT follow-up, its answer prefix (:func:`evals.prompts.condition_turns`)
``candidates(item)``      the answers and their surface forms
``columns``               its columns of the samples table (Arrow fields with descriptions), and
``score_columns``         which of them derive from scores (null on an error row)
``sample_columns``        the values of those columns for one scored prompt
``metrics``               one cell's metric rows (pure functions, in ``evals.metrics.*``)
``metric_descriptions``   what each metric name means (documentation, the report)
``headlines``             the metrics reports and tables show first
``cluster_sums``          a headline metric's per-cluster sums and statistic, so that a paired clustered
                          bootstrap (``delta_<metric>`` rows: condition − baseline) can be computed
========================  =================================================================================

A benchmark's ``name`` must match ``schemas.benchmark_specs.BENCHMARK_NAME_PATTERN``; its ``columns``
must not redefine a common column with another type (:func:`schemas.tables.samples_schema`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl
import pyarrow as pa
from pydantic import BaseModel, ValidationError

from evals.conditions import Condition
from evals.datasets import DatasetSources
from evals.metrics.common import BootstrapSettings, CellKey, ClusterSums, MetricRow
from evals.prompts import Candidate, EvalPrompt
from evals.scoring import AnswerScores
from schemas.errors import InvalidInputError, field_path

__all__ = ["Benchmark", "ClusterSums", "Headline"]


@dataclass(frozen=True, slots=True)
class Headline:
    """A metric reports and tables show first (overall slice)."""

    metric: str
    ci_method: str
    """The interval shown: ``bootstrap`` or ``fisher_z``."""
    label: str
    """A short column header, e.g. ``BBQ s_AMB``."""
    method: str = "expected"
    per_slice: bool = False
    """Also tabulated per slice (e.g. BBQ category) in the report."""


class Benchmark(ABC):
    """One benchmark (see the module docstring for what each member is for)."""

    name: str
    title: str
    spec_model: type[BaseModel]
    conditions: Mapping[str, Condition]
    columns: Sequence[pa.Field]
    score_columns: Sequence[str]
    metric_descriptions: Mapping[str, str]
    headlines: Sequence[Headline]

    # -- settings and size -------------------------------------------------------------------------
    def validate_spec(self, raw: Any, *, field: str) -> BaseModel:
        """The benchmark's settings from a spec's raw value; InvalidInputError naming ``field``.<path>."""
        if isinstance(raw, self.spec_model):
            return raw
        try:
            return self.spec_model.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            inner = field_path(first["loc"])
            where = f"{field}.{inner}" if inner else field
            raise InvalidInputError(f"{where}: {first['msg']}", field=where) from None

    @abstractmethod
    def planned_items(self, spec: Any) -> int:
        """Rows one condition of this benchmark plans (items × variants); an upper bound is fine."""

    # -- data --------------------------------------------------------------------------------------
    @abstractmethod
    def load_items(self, spec: Any, sources: DatasetSources, seed: int) -> Sequence[Any]:
        """The selected items in a deterministic order, read and verified; DataError naming file and row."""

    def data_files(self, spec: Any, sources: DatasetSources) -> list[dict[str, Any]]:
        """The files ``load_items`` reads, with their sha256 (``spec.json``'s ``datasets``)."""
        return []

    def preview_item(self, spec: Any, sources: DatasetSources, *, index: int, category: str | None) -> Any:
        """The item ``moralscope prompts`` shows: the ``index``-th (0-based) of ``category`` (or of all)."""
        items = [
            item for item in self.load_items(spec, sources, 0) if category is None or self.category_of(item) == category
        ]
        if category is not None and not items:
            raise InvalidInputError(f"{self.name} has no items of category {category!r}", field="category")
        if index >= len(items):
            raise InvalidInputError(f"--index {index} is out of range: there are {len(items)} items", field="index")
        return items[index]

    def category_of(self, item: Any) -> str | None:
        """The item's category (the samples table's ``category``), if it has one."""
        return None

    # -- prompts -----------------------------------------------------------------------------------
    @abstractmethod
    def render(self, item: Any, condition: Condition) -> list[EvalPrompt]:
        """The item's prompts under a condition: one per variant."""

    @abstractmethod
    def candidates(self, item: Any) -> tuple[Candidate, ...]:
        """The item's answers with their surface forms."""

    # -- results -----------------------------------------------------------------------------------
    @abstractmethod
    def sample_columns(self, prompt: EvalPrompt, scores: AnswerScores | None) -> dict[str, Any]:
        """This benchmark's columns of a samples row; ``scores`` is None on an error row."""

    @abstractmethod
    def metrics(self, samples: pl.DataFrame, key: CellKey, settings: BootstrapSettings) -> list[MetricRow]:
        """The metric rows of one (model, condition) cell of this benchmark's samples."""

    def cluster_sums(self, samples: pl.DataFrame, metric: str, method: str = "expected") -> ClusterSums:
        """One headline metric of one cell (overall slice) as per-cluster sums (see :class:`ClusterSums`)."""
        raise InvalidInputError(
            f"{self.name} does not expose per-cluster sums of {metric!r} ({method})", field="metric"
        )


def registered_files(sources: DatasetSources, keys: Sequence[str]) -> list[dict[str, Any]]:
    """Provenance of files of the dataset registry (``evals/registry.json``) a built-in benchmark read:
    where each was found, its pinned sha256 and upstream URL."""
    from evals.datasets import DATASET_FILES

    found = []
    for key in keys:
        for status in sources.status(key):
            if status.state == "ok":
                found.append({**status.to_dict(), "sha256": DATASET_FILES[key].sha256, "url": DATASET_FILES[key].url})
    return found
