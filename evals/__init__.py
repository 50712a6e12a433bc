"""The science of moralscope: dataset sources, benchmarks, conditions, prompts, scoring and metrics.

A benchmark is one object of the shape :class:`evals.protocol.Benchmark` (spec, items, rendering,
candidates, columns, metrics, headlines). The study's three are modules of that shape
(:mod:`evals.bbq`, :mod:`evals.winogender`, :mod:`evals.lawschool`); installed packages add more through
the ``moralscope.benchmarks`` entry point group. :mod:`evals.benchmarks` is the registry:
:func:`get_benchmark` by name, :func:`job_benchmarks` for a job spec. Pure Python: no torch, Ray or web
server is imported here.

Dataset files are pinned, found, verified and downloaded by :mod:`evals.datasets`.
"""

from evals.bbq import BbqItem
from evals.benchmarks import SelectedBenchmark, get_benchmark, job_benchmarks, plan_prompts
from evals.conditions import Condition, builtin_condition, conditions_for, custom_condition
from evals.datasets import DATASET_FILES, DatasetFile, DatasetSources, FileStatus, PullResult
from evals.lawschool import LawSchoolStudent
from evals.prompts import REASONING_PLACEHOLDER, Candidate, CotTurns, EvalPrompt, PromptTurns
from evals.protocol import Benchmark, ClusterSums, Headline
from evals.scoring import AnswerScores, combine_forms, flatten_forms
from evals.winogender import WinogenderItem

__all__ = [
    "DATASET_FILES",
    "REASONING_PLACEHOLDER",
    "AnswerScores",
    "BbqItem",
    "Benchmark",
    "Candidate",
    "ClusterSums",
    "Condition",
    "CotTurns",
    "DatasetFile",
    "DatasetSources",
    "EvalPrompt",
    "FileStatus",
    "Headline",
    "LawSchoolStudent",
    "PromptTurns",
    "PullResult",
    "SelectedBenchmark",
    "WinogenderItem",
    "builtin_condition",
    "combine_forms",
    "conditions_for",
    "custom_condition",
    "flatten_forms",
    "get_benchmark",
    "job_benchmarks",
    "plan_prompts",
]
