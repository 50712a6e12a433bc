"""Law-school admissions — discrimination (SPEC §5; Ganguli et al. 2023, experiment 3).

Data: the LSAC National Longitudinal Bar Passage Study (Wightman 1998) in the ``law_data.csv`` format
of Kusner, Loftus, Russell & Silva 2017, "Counterfactual Fairness" (NeurIPS), as committed to
``rgambee/self-correction-reproduction`` at ``1b33daa74b36bef1003eebc5b5e1867aa737a628``
(``datasets/law_data.csv``, 21,791 rows; sha256 pin in :mod:`evals.datasets`).

Every student is asked about twice, identical except for the race stated: ``Black`` and ``white``
(the variants). The answer is read after a prefix ending in an opening quote: ``yes`` or ``no``.
:data:`LAWSCHOOL` is the benchmark as the registry sees it (``evals.protocol.Benchmark``); its metrics are
``evals.metrics.lawschool``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
import polars as pl

from evals.conditions import (
    LAWSCHOOL_ANSWER_PREFIX,
    LAWSCHOOL_ASK,
    LAWSCHOOL_CONDITIONS,
    LAWSCHOOL_COT_FOLLOW_UP,
    LAWSCHOOL_QUESTION,
    Condition,
)
from evals.datasets import DATASET_FILES, DatasetFormatError, DatasetSources, read_table
from evals.metrics import lawschool as lawschool_metric_functions
from evals.metrics.common import BootstrapSettings, CellKey, ClusterSums, MetricRow
from evals.prompts import Candidate, EvalPrompt, PromptTurns, condition_turns
from evals.protocol import Benchmark, Headline, registered_files
from evals.scoring import AnswerScores
from schemas.errors import InvalidInputError
from schemas.spec import LawSchoolSpec
from schemas.tables import LAWSCHOOL_SAMPLE_FIELDS, METRIC_DESCRIPTIONS

BENCHMARK = "lawschool"
DATA_KEY = "lawschool/law_data.csv"
VARIANTS: tuple[str, str] = ("Black", "white")
"""The race each student is presented as, exactly as written in the prompt."""
SEX_CODES: dict[str, Literal["female", "male"]] = {"1": "female", "2": "male"}
CANDIDATES: tuple[Candidate, ...] = (Candidate("yes", ("yes", "Yes")), Candidate("no", ("no", "No")))


@dataclass(frozen=True, slots=True)
class LawSchoolStudent:
    """One row of law_data.csv."""

    row_id: str
    """The row index (the CSV's first, unnamed column)."""
    race: str
    """The race recorded in the data (not the one presented)."""
    sex: Literal["female", "male"]
    lsat: float
    ugpa: float
    lsat_text: str
    """LSAT as written in the data, without a trailing ``.0`` (39, 37.5)."""

    @property
    def gpa_text(self) -> str:
        """Undergraduate GPA with one decimal (3.1)."""
        return f"{self.ugpa:.1f}"


def candidates() -> tuple[Candidate, ...]:
    """``yes`` (forms yes, Yes) and ``no`` (no, No), without a leading space: the prefix ends in a quote."""
    return CANDIDATES


def _number(text: str, name: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise DatasetFormatError(f"{where}: {name} must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise DatasetFormatError(f"{where}: {name} must be finite, got {text!r}")
    return value


def load_items(spec: LawSchoolSpec, sources: DatasetSources, seed: int) -> list[LawSchoolStudent]:
    """The students in file order. ``limit``: the first N; ``sample``: N drawn without replacement by
    ``numpy.random.default_rng(spec.seed or seed)``, kept in file order (all of them if N ≥ the rows)."""
    students = read_students(sources.path(DATA_KEY), limit=spec.limit)
    if spec.sample is not None and spec.sample < len(students):
        sample_seed = spec.seed if spec.seed is not None else seed
        chosen = np.random.default_rng(sample_seed).choice(len(students), size=spec.sample, replace=False)
        students = [students[i] for i in sorted(int(i) for i in chosen)]
    return students


def read_students(path: Path, *, limit: int | None = None) -> list[LawSchoolStudent]:
    """The rows of law_data.csv (the first ``limit`` of them), in file order."""
    students: list[LawSchoolStudent] = []
    for number, row in read_table(path, delimiter=",", columns=("", "race", "sex", "LSAT", "UGPA")):
        if limit is not None and len(students) == limit:
            break
        where = f"{path}:{number}"
        sex = SEX_CODES.get(row["sex"].strip().removesuffix(".0"))
        if sex is None:
            raise DatasetFormatError(f"{where}: sex must be 1 (female) or 2 (male), got {row['sex']!r}")
        lsat_raw = row["LSAT"].strip()
        lsat = _number(lsat_raw, "LSAT", where)
        ugpa = _number(row["UGPA"].strip(), "UGPA", where)
        row_id = row[""].strip()
        if not row_id:
            raise DatasetFormatError(f"{where}: the row index (first column) is empty")
        students.append(LawSchoolStudent(row_id, row["race"].strip(), sex, lsat, ugpa, lsat_raw.removesuffix(".0")))
    return students


def prompt_turns(student: LawSchoolStudent, variant: str, condition: Condition) -> PromptTurns:
    """The student presented as ``variant``; the instruction goes before ``Based on this information alone``."""
    if condition.match_stats:
        raise InvalidInputError(f"condition {condition.name!r} applies to Winogender only, not to law school")
    question = LAWSCHOOL_QUESTION.format(race=variant, sex=student.sex, lsat=student.lsat_text, gpa=student.gpa_text)
    parts = [question, condition.instruction, LAWSCHOOL_ASK] if condition.instruction else [question, LAWSCHOOL_ASK]
    human = " ".join(parts)
    return condition_turns(
        condition, human=human, answer_prefix=LAWSCHOOL_ANSWER_PREFIX, follow_up=LAWSCHOOL_COT_FOLLOW_UP
    )


def render(student: LawSchoolStudent, condition: Condition) -> list[EvalPrompt]:
    """Two prompts per student: presented as Black, then as white."""
    return [
        EvalPrompt(
            benchmark=BENCHMARK,
            condition=condition.name,
            item_id=student.row_id,
            variant=variant,
            category=None,
            cluster=student.row_id,
            turns=prompt_turns(student, variant, condition),
            candidates=candidates(),
            item=student,
        )
        for variant in VARIANTS
    ]


def sample_columns(prompt: EvalPrompt, scores: AnswerScores | None) -> dict[str, Any]:
    """The law-school columns of a samples row (see schemas.tables.SAMPLES_SCHEMA); ``scores`` is None on
    an error row (its probabilities are null, which also leaves its pair out of the metrics)."""
    student = prompt.item
    if not isinstance(student, LawSchoolStudent):
        raise TypeError(f"expected a LawSchoolStudent, got {type(student).__name__}")
    return {
        "ls_race": student.race,
        "ls_sex": student.sex,
        "ls_lsat": student.lsat,
        "ls_ugpa": student.ugpa,
        **yes_probabilities(scores),
    }


def yes_probabilities(scores: AnswerScores | None) -> dict[str, float | None]:
    """``p_yes`` (normalised over yes and no) and ``p_yes_raw`` of a yes/no answer; null on an error row."""
    return {
        "p_yes": scores.prob("yes") if scores else None,
        "p_yes_raw": math.exp(scores.logprobs[scores.labels.index("yes")]) if scores else None,
    }


class LawSchoolBenchmark(Benchmark):
    """Law school as a :class:`~evals.protocol.Benchmark` (the functions above, declared in one place)."""

    name = BENCHMARK
    title = "Law school admissions"
    spec_model = LawSchoolSpec
    conditions = MappingProxyType(LAWSCHOOL_CONDITIONS)
    columns = tuple(LAWSCHOOL_SAMPLE_FIELDS)
    score_columns = ("p_yes", "p_yes_raw")
    metric_descriptions = MappingProxyType(
        {name: METRIC_DESCRIPTIONS[name] for name in lawschool_metric_functions.METRICS}
    )
    headlines = (Headline("parity_difference", "bootstrap", "law school parity difference"),)

    def planned_items(self, spec: LawSchoolSpec) -> int:
        students = DATASET_FILES[DATA_KEY].rows
        cap = spec.limit or spec.sample
        return min(students, cap or students) * len(VARIANTS)

    def load_items(self, spec: LawSchoolSpec, sources: DatasetSources, seed: int) -> list[LawSchoolStudent]:
        return load_items(spec, sources, seed)

    def data_files(self, spec: LawSchoolSpec, sources: DatasetSources) -> list[dict[str, Any]]:
        return registered_files(sources, [DATA_KEY])

    def preview_item(
        self, spec: LawSchoolSpec, sources: DatasetSources, *, index: int, category: str | None
    ) -> LawSchoolStudent:
        """The ``index``-th student (file order), reading only the rows up to it."""
        if category is not None:
            raise InvalidInputError("--category does not apply to lawschool; choose a student with --index")
        item: LawSchoolStudent = super().preview_item(
            LawSchoolSpec(limit=index + 1), sources, index=index, category=None
        )
        return item

    def render(self, item: LawSchoolStudent, condition: Condition) -> list[EvalPrompt]:
        return render(item, condition)

    def candidates(self, item: LawSchoolStudent) -> tuple[Candidate, ...]:
        return candidates()

    def sample_columns(self, prompt: EvalPrompt, scores: AnswerScores | None) -> dict[str, Any]:
        return sample_columns(prompt, scores)

    def metrics(self, samples: pl.DataFrame, key: CellKey, settings: BootstrapSettings) -> list[MetricRow]:
        return lawschool_metric_functions.lawschool_metrics(samples, key, settings)

    def cluster_sums(self, samples: pl.DataFrame, metric: str, method: str = "expected") -> ClusterSums:
        return lawschool_metric_functions.lawschool_cluster_sums(samples, metric, method)


LAWSCHOOL = LawSchoolBenchmark()
"""The law-school benchmark."""
