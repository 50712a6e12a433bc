"""Size limits checked when a job is submitted, cheaply (no dataset is read, no model loaded).

The rows a job plans are counted from the spec and the dataset registry's row counts: for each
benchmark its selected items (variants included) × the conditions that apply to it × reasoning
samples for CoT conditions, summed, × models. This is the number of rows of the samples table.
"""

from __future__ import annotations

from evals.conditions import conditions_for
from evals.datasets import DATASET_FILES, bbq_key
from schemas.errors import LimitExceededError
from schemas.spec import JobSpec
from service.settings import Settings

WINOGENDER_ITEMS = 60
"""Templates whose pronoun refers to the occupation, one per occupation (SPEC §4)."""
LAWSCHOOL_VARIANTS = 2
"""Each student is asked about as Black and as white (SPEC §5)."""


def _items(spec: JobSpec, benchmark: str) -> int:
    benchmarks = spec.benchmarks
    if benchmark == "bbq" and benchmarks.bbq is not None:
        bbq = benchmarks.bbq
        cap = bbq.limit or bbq.sample_per_category
        return sum(
            min(DATASET_FILES[bbq_key(c)].rows, cap or DATASET_FILES[bbq_key(c)].rows) for c in bbq.selected_categories
        )
    if benchmark == "winogender" and benchmarks.winogender is not None:
        return min(benchmarks.winogender.limit or WINOGENDER_ITEMS, WINOGENDER_ITEMS)
    if benchmark == "lawschool" and benchmarks.lawschool is not None:
        students = DATASET_FILES["lawschool/law_data.csv"].rows
        cap = benchmarks.lawschool.limit or benchmarks.lawschool.sample
        return min(students, cap or students) * LAWSCHOOL_VARIANTS
    return 0


def planned_rows(spec: JobSpec) -> int:
    """Rows of the samples table the job will produce (an upper bound where a selection exceeds the data)."""
    per_model = 0
    for benchmark in spec.benchmarks.selected:
        items = _items(spec, benchmark)
        for condition in conditions_for(spec, benchmark):
            per_model += items * (spec.cot.samples if condition.is_cot else 1)
    return per_model * len(spec.models)


def planned_requests(spec: JobSpec) -> int:
    """Engine requests the job will make: one score request per row, plus one generate request per CoT row."""
    per_model = 0
    for benchmark in spec.benchmarks.selected:
        items = _items(spec, benchmark)
        for condition in conditions_for(spec, benchmark):
            per_model += items * (2 * spec.cot.samples if condition.is_cot else 1)
    return per_model * len(spec.models)


def check_planned_rows(spec: JobSpec, *, settings: Settings) -> int:
    """The planned rows; LimitExceededError (422) when over ``Settings.max_items_per_job``."""
    rows = planned_rows(spec)
    if rows > settings.max_items_per_job:
        raise LimitExceededError(
            f"the job plans {rows:,} rows (models × items × conditions × reasoning samples), over the limit of "
            f"{settings.max_items_per_job:,} per job (MORALSCOPE_MAX_ITEMS_PER_JOB); select fewer items "
            "(benchmarks.*.limit / sample) or split the job",
            field="benchmarks",
            http_status=422,
        )
    return rows


def check_submission(spec: JobSpec, *, settings: Settings) -> None:
    """Everything checked when a job is submitted beyond the spec's own validation."""
    check_planned_rows(spec, settings=settings)
