"""The science of moralscope: dataset sources, the three benchmarks, conditions, prompts and scoring.

Dataset files are pinned, found, verified and downloaded by :mod:`evals.datasets`.

One module per benchmark (:mod:`evals.bbq`, :mod:`evals.winogender`, :mod:`evals.lawschool`), each
with ``load_items``, ``render``, ``candidates`` and ``sample_columns``; :func:`get_benchmark` looks
them up by name. Pure Python: no torch, Ray or web server is imported here.
"""

from evals.bbq import BbqItem
from evals.benchmarks import Benchmark, get_benchmark, plan_prompts
from evals.conditions import Condition, builtin_condition, conditions_for, custom_condition
from evals.datasets import DATASET_FILES, DatasetFile, DatasetSources, FileStatus, PullResult
from evals.lawschool import LawSchoolStudent
from evals.prompts import REASONING_PLACEHOLDER, Candidate, CotTurns, EvalPrompt, PromptTurns
from evals.scoring import AnswerScores, combine_forms, flatten_forms
from evals.winogender import WinogenderItem

__all__ = [
    "DATASET_FILES",
    "REASONING_PLACEHOLDER",
    "AnswerScores",
    "BbqItem",
    "Benchmark",
    "Candidate",
    "Condition",
    "CotTurns",
    "DatasetFile",
    "DatasetSources",
    "EvalPrompt",
    "FileStatus",
    "LawSchoolStudent",
    "PromptTurns",
    "PullResult",
    "WinogenderItem",
    "builtin_condition",
    "combine_forms",
    "conditions_for",
    "custom_condition",
    "flatten_forms",
    "get_benchmark",
    "plan_prompts",
]
