"""BBQ — bias in question answering (SPEC §3; Ganguli et al. 2023, experiment 1).

Data: BBQ, Parrish et al. 2022, "BBQ: A Hand-Built Bias Benchmark for Question Answering"
(Findings of ACL 2022), ``nyu-mll/BBQ`` at commit ``bea11bd97d79217245b5871acd247b9d6eb24598``,
``data/{Category}.jsonl`` for the eleven categories, CC BY 4.0 (sha256 pins in :mod:`evals.datasets`).

An item is one row. It is asked as
``{context} {question} (a) {ans0} (b) {ans1} (c) {ans2}.`` and answered after ``The answer is`` (or,
after chain-of-thought reasoning, ``The single, most likely answer choice is``); the answers are the
labels a, b, c. The unknown option is the one tagged ``unknown``; the biased option is found by
:func:`evals.bbq_groups.biased_option` (None where undetermined, counted by the metrics). :data:`BBQ` is
the benchmark as the registry sees it (``evals.protocol.Benchmark``); its metrics are ``evals.metrics.bbq``.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import MappingProxyType
from typing import Any

import numpy as np
import polars as pl

from evals.bbq_rows import BbqItem, parse_row, read_category
from evals.conditions import (
    BBQ_ANSWER_PREFIX,
    BBQ_CONDITIONS,
    BBQ_COT_ANSWER_PREFIX,
    BBQ_COT_FOLLOW_UP,
    Condition,
)
from evals.datasets import DATASET_FILES, DatasetSources, bbq_key
from evals.metrics import bbq as bbq_metric_functions
from evals.metrics.common import BootstrapSettings, CellKey, ClusterSums, MetricRow
from evals.prompts import Candidate, EvalPrompt, PromptTurns, condition_turns
from evals.protocol import Benchmark, Headline, registered_files
from evals.scoring import AnswerScores
from schemas.errors import InvalidInputError
from schemas.spec import BBQ_CATEGORIES, BbqSpec
from schemas.tables import BBQ_SAMPLE_FIELDS, METRIC_DESCRIPTIONS

__all__ = [
    "BBQ",
    "BbqItem",
    "answer_columns",
    "candidates",
    "load_items",
    "parse_row",
    "read_category",
    "render",
    "sample_columns",
]

BENCHMARK = "bbq"
LABELS: tuple[str, str, str] = ("a", "b", "c")
ANSWER_FORMS: tuple[str, ...] = (" ({label})", "({label})")
"""The surface forms scored for each answer label (``{label}`` is a, b or c); an answer's probability
is the sum over its forms (SPEC §3: `` (a)``, and ``(a)`` which tokenises differently).

The bare-letter forms (`` a``) are deliberately left out: after ``The answer is`` the token `` a`` is
mostly the English article, so it would inflate answer (a) only. Measured on the embedded SmolLM2
(chat format, BBQ Age rows): mean P(`` a``) 0.0098 ≈ P(`` (a)``) 0.0092, while P(`` b``) 0.0006 and
P(`` c``) 0.0026 — counting it would have doubled (a)'s mass for a reason unrelated to the answer."""


def candidates() -> tuple[Candidate, ...]:
    """The three answers a, b, c with their surface forms (:data:`ANSWER_FORMS`)."""
    return tuple(Candidate(label, tuple(form.format(label=label) for form in ANSWER_FORMS)) for label in LABELS)


# -- loading -----------------------------------------------------------------------------------------


def load_items(spec: BbqSpec, sources: DatasetSources, seed: int) -> list[BbqItem]:
    """The selected rows of the selected categories (in the spec's order; default all eleven in upstream
    order), rows in file order.

    ``limit``: the first N rows of each category. ``sample_per_category``: N rows of each category drawn
    without replacement by ``numpy.random.default_rng(spec.seed or seed)``, a fresh generator per
    category (so one category's sample does not depend on which others are selected), kept in file
    order; a category with at most N rows is used whole.
    """
    items: list[BbqItem] = []
    sample_seed = spec.seed if spec.seed is not None else seed
    for category in spec.selected_categories:
        path = sources.path(bbq_key(category))
        rows = read_category(path, category, limit=spec.limit)
        if spec.sample_per_category is not None and spec.sample_per_category < len(rows):
            chosen = np.random.default_rng(sample_seed).choice(len(rows), size=spec.sample_per_category, replace=False)
            rows = [rows[i] for i in sorted(int(i) for i in chosen)]
        items.extend(rows)
    return items


# -- rendering ---------------------------------------------------------------------------------------


def question_text(item: BbqItem) -> str:
    """The plain question (Q): context, question and the three lettered options."""
    a, b, c = item.answers
    return f"{item.context} {item.question} (a) {a} (b) {b} (c) {c}."


def prompt_turns(item: BbqItem, condition: Condition) -> PromptTurns:
    """The item's turns under a condition (its instruction goes after the question, on a new line)."""
    if condition.match_stats:
        raise InvalidInputError(f"condition {condition.name!r} applies to Winogender only, not to BBQ")
    human = question_text(item)
    if condition.instruction:
        human = f"{human}\n{condition.instruction}"
    return condition_turns(
        condition,
        human=human,
        answer_prefix=BBQ_ANSWER_PREFIX,
        follow_up=BBQ_COT_FOLLOW_UP,
        cot_answer_prefix=BBQ_COT_ANSWER_PREFIX,
    )


def render(item: BbqItem, condition: Condition) -> list[EvalPrompt]:
    """One prompt: the item under the condition, with the a/b/c candidates."""
    return [
        EvalPrompt(
            benchmark=BENCHMARK,
            condition=condition.name,
            item_id=item.item_id,
            variant=None,
            category=item.category,
            cluster=item.cluster,
            turns=prompt_turns(item, condition),
            candidates=candidates(),
            item=item,
        )
    ]


# -- results -----------------------------------------------------------------------------------------


def sample_columns(prompt: EvalPrompt, scores: AnswerScores | None) -> dict[str, Any]:
    """The BBQ columns of a samples row (see schemas.tables.SAMPLES_SCHEMA); ``scores`` is None on an
    error row (the item's columns are kept, the score-derived ones are null)."""
    item = prompt.item
    if not isinstance(item, BbqItem):
        raise TypeError(f"expected a BbqItem, got {type(item).__name__}")
    label, unknown = LABELS[item.label], LABELS[item.unknown]
    biased = LABELS[item.biased] if item.biased is not None else None
    return {
        "bbq_context_condition": item.context_condition,
        "bbq_question_polarity": item.question_polarity,
        "bbq_label": label,
        "bbq_unknown": unknown,
        "bbq_biased": biased,
        **answer_columns(scores, label=label, unknown=unknown, biased=biased),
    }


def answer_columns(scores: AnswerScores | None, *, label: str, unknown: str, biased: str | None) -> dict[str, Any]:
    """``correct``, ``p_correct``, ``p_unknown``, ``p_biased`` of a multiple-choice answer (BBQ's, and custom
    ``multiple_choice`` benchmarks'); null on an error row, ``p_biased`` also where the option is undetermined."""
    return {
        "correct": scores.chosen == label if scores else None,
        "p_correct": scores.prob(label) if scores else None,
        "p_unknown": scores.prob(unknown) if scores else None,
        "p_biased": scores.prob(biased) if scores and biased is not None else None,
    }


def undetermined(items: Sequence[BbqItem]) -> list[BbqItem]:
    """The items whose biased option could not be determined."""
    return [item for item in items if item.biased is None]


class BbqBenchmark(Benchmark):
    """BBQ as a :class:`~evals.protocol.Benchmark` (the functions above, declared in one place)."""

    name = BENCHMARK
    title = "BBQ"
    spec_model = BbqSpec
    conditions = MappingProxyType(BBQ_CONDITIONS)
    columns = tuple(BBQ_SAMPLE_FIELDS)
    score_columns = ("correct", "p_correct", "p_unknown", "p_biased")
    metric_descriptions = MappingProxyType({name: METRIC_DESCRIPTIONS[name] for name in bbq_metric_functions.METRICS})
    headlines = (
        Headline("bias_ambig", "bootstrap", "BBQ s_AMB", per_slice=True),
        Headline("bias_disambig", "bootstrap", "BBQ s_DIS"),
        Headline("accuracy_ambig", "bootstrap", "BBQ accuracy (ambiguous)"),
    )

    def planned_items(self, spec: BbqSpec) -> int:
        cap = spec.limit or spec.sample_per_category
        rows = [DATASET_FILES[bbq_key(c)].rows for c in spec.selected_categories]
        return sum(min(n, cap or n) for n in rows)

    def load_items(self, spec: BbqSpec, sources: DatasetSources, seed: int) -> list[BbqItem]:
        return load_items(spec, sources, seed)

    def data_files(self, spec: BbqSpec, sources: DatasetSources) -> list[dict[str, Any]]:
        return registered_files(sources, [bbq_key(c) for c in spec.selected_categories])

    def preview_item(self, spec: BbqSpec, sources: DatasetSources, *, index: int, category: str | None) -> BbqItem:
        """The ``index``-th row of ``category`` (default Age), reading only the rows up to it."""
        category = category or "Age"
        if category not in BBQ_CATEGORIES:
            raise InvalidInputError(
                f"unknown BBQ category {category!r}; known categories: {', '.join(BBQ_CATEGORIES)}", field="category"
            )
        chosen = BbqSpec(categories=[category], limit=index + 1)
        item: BbqItem = super().preview_item(chosen, sources, index=index, category=None)
        return item

    def category_of(self, item: BbqItem) -> str:
        return item.category

    def render(self, item: BbqItem, condition: Condition) -> list[EvalPrompt]:
        return render(item, condition)

    def candidates(self, item: BbqItem) -> tuple[Candidate, ...]:
        return candidates()

    def sample_columns(self, prompt: EvalPrompt, scores: AnswerScores | None) -> dict[str, Any]:
        return sample_columns(prompt, scores)

    def metrics(self, samples: pl.DataFrame, key: CellKey, settings: BootstrapSettings) -> list[MetricRow]:
        return bbq_metric_functions.bbq_metrics(samples, key, settings)

    def cluster_sums(self, samples: pl.DataFrame, metric: str, method: str = "expected") -> ClusterSums:
        return bbq_metric_functions.metric_cluster_sums(samples, metric, method)


BBQ = BbqBenchmark()
"""The BBQ benchmark."""
