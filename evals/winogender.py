"""Winogender — gender bias in pronoun choice (SPEC §4; Ganguli et al. 2023, experiment 2).

Data: Winogender Schemas, Rudinger, Naradowsky, Leonard & Van Durme 2018, "Gender Bias in Coreference
Resolution" (NAACL 2018), ``rudinger/winogender-schemas`` at commit
``1c7f8b481ad8a234b41e9f76a424d6e856e13f7f``: ``data/templates.tsv`` and ``data/occupations-stats.tsv``
(MIT; sha256 pins in :mod:`evals.datasets`).

Items are the 60 templates whose pronoun refers to the occupation (``answer == 0``), with the
specific participant. ``$OCCUPATION``/``$PARTICIPANT`` are filled in and the pronoun slot becomes
``_``; the model continues the sentence up to the blank, and the answers are the female, male and
neutral pronouns of the slot's case. :data:`WINOGENDER` is the benchmark as the registry sees it
(``evals.protocol.Benchmark``); its metrics are ``evals.metrics.winogender``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import polars as pl

from evals.conditions import WINOGENDER_CONDITIONS, WINOGENDER_QUESTION, Condition
from evals.datasets import DatasetFormatError, DatasetSources, read_table
from evals.metrics import winogender as winogender_metric_functions
from evals.metrics.common import BootstrapSettings, CellKey, ClusterSums, MetricRow
from evals.prompts import Candidate, EvalPrompt, PromptTurns, condition_turns
from evals.protocol import Benchmark, Headline, registered_files
from evals.scoring import AnswerScores
from schemas.errors import InvalidInputError
from schemas.spec import WinogenderSpec
from schemas.tables import METRIC_DESCRIPTIONS, WINOGENDER_SAMPLE_FIELDS

BENCHMARK = "winogender"
ITEMS = 60
"""Templates whose pronoun refers to the occupation, one per occupation."""
TEMPLATES_KEY = "winogender/templates.tsv"
STATS_KEY = "winogender/occupations-stats.tsv"
BLANK = "_"
LABELS: tuple[str, str, str] = ("female", "male", "neutral")

PronounCase = Literal["nominative", "possessive", "accusative"]
PRONOUN_SLOTS: dict[str, PronounCase] = {
    "$NOM_PRONOUN": "nominative",
    "$POSS_PRONOUN": "possessive",
    "$ACC_PRONOUN": "accusative",
}
PRONOUNS: dict[PronounCase, tuple[str, str, str]] = {
    "nominative": ("she", "he", "they"),
    "possessive": ("her", "his", "their"),
    "accusative": ("her", "him", "them"),
}
"""Female, male, neutral pronoun of each case."""

_SENTENCE_END = re.compile(r"""[.!?]["')\]]*$""")


@dataclass(frozen=True, slots=True)
class WinogenderItem:
    """One occupation's template, filled in."""

    occupation: str
    participant: str
    sentence: str
    """The sentence with the pronoun slot as ``_``."""
    pronoun_case: PronounCase
    bls_pct_female: float
    """% women in the occupation (US Bureau of Labor Statistics)."""
    bls_year: int
    line: int
    """Line of the template in templates.tsv."""

    @property
    def prefix(self) -> str:
        """The sentence up to (not including) the blank, trailing whitespace removed."""
        return self.sentence[: self.sentence.index(BLANK)].rstrip()

    @property
    def blank_starts_sentence(self) -> bool:
        """The blank opens a sentence (so the pronoun is capitalised)."""
        return not self.prefix or bool(_SENTENCE_END.search(self.prefix))

    @property
    def female_pct(self) -> int:
        """bls_pct_female rounded half up (89.58 → 90, 12.5 → 13), as Q+MatchStats states it."""
        return int(Decimal(str(self.bls_pct_female)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def fill_template(template: str, occupation: str, participant: str) -> tuple[str, PronounCase]:
    """The template with occupation and participant filled in and its single pronoun slot as ``_``."""
    slots = [slot for slot in PRONOUN_SLOTS if slot in template]
    count = sum(template.count(slot) for slot in PRONOUN_SLOTS)
    if count != 1:
        raise ValueError(f"expected exactly one pronoun slot ({', '.join(PRONOUN_SLOTS)}), found {count}")
    sentence = template.replace("$OCCUPATION", occupation).replace("$PARTICIPANT", participant)
    return sentence.replace(slots[0], BLANK), PRONOUN_SLOTS[slots[0]]


def candidates(item: WinogenderItem) -> tuple[Candidate, ...]:
    """Female, male and neutral pronouns of the blank's case, after a space (capitalised first, with the
    lower-case form kept, when the blank opens a sentence; no space when the prefix is empty)."""
    space = " " if item.prefix else ""
    result = []
    for label, pronoun in zip(LABELS, PRONOUNS[item.pronoun_case], strict=True):
        forms = (pronoun.capitalize(), pronoun) if item.blank_starts_sentence else (pronoun,)
        result.append(Candidate(label, tuple(space + form for form in forms)))
    return tuple(result)


def load_items(spec: WinogenderSpec, sources: DatasetSources, seed: int) -> list[WinogenderItem]:
    """The occupation-referent templates in file order (``limit``: the first N); ``seed`` is unused."""
    items = read_items(sources.path(TEMPLATES_KEY), sources.path(STATS_KEY))
    return items[: spec.limit] if spec.limit is not None else items


def read_stats(path: Path) -> dict[str, tuple[float, int]]:
    """occupation → (bls_pct_female, bls_year) from occupations-stats.tsv."""
    stats: dict[str, tuple[float, int]] = {}
    for number, row in read_table(path, delimiter="\t", columns=("occupation", "bls_pct_female", "bls_year")):
        try:
            stats[row["occupation"].strip()] = (float(row["bls_pct_female"]), int(row["bls_year"]))
        except ValueError as exc:
            raise DatasetFormatError(f"{path}:{number}: bad bls_pct_female or bls_year ({exc})") from exc
    return stats


def read_items(templates_path: Path, stats_path: Path) -> list[WinogenderItem]:
    """The ``answer == 0`` templates of templates.tsv, filled in and joined with their BLS statistics."""
    stats = read_stats(stats_path)
    items: list[WinogenderItem] = []
    columns = ("occupation(0)", "other-participant(1)", "answer", "sentence")
    for number, row in read_table(templates_path, delimiter="\t", columns=columns):
        where = f"{templates_path}:{number}"
        answer = row["answer"].strip()
        if answer not in ("0", "1"):
            raise DatasetFormatError(f"{where}: answer must be 0 or 1, got {row['answer']!r}")
        if answer != "0":
            continue
        occupation, participant = row["occupation(0)"].strip(), row["other-participant(1)"].strip()
        try:
            sentence, case = fill_template(row["sentence"].strip(), occupation, participant)
        except ValueError as exc:
            raise DatasetFormatError(f"{where}: {exc}") from exc
        if occupation not in stats:
            raise DatasetFormatError(
                f"{where}: occupation {occupation!r} has no row in {stats_path}; "
                "the two files must come from the same pinned revision"
            )
        if any(item.occupation == occupation for item in items):
            raise DatasetFormatError(f"{where}: occupation {occupation!r} has a second answer-0 template")
        pct, year = stats[occupation]
        items.append(WinogenderItem(occupation, participant, sentence, case, pct, year, number))
    return items


def question_text(item: WinogenderItem) -> str:
    """The plain question (Q)."""
    return WINOGENDER_QUESTION.format(sentence=item.sentence)


def instruction_for(item: WinogenderItem, condition: Condition) -> str | None:
    """The condition's instruction for this item (Q+MatchStats is filled with the occupation's share)."""
    if condition.match_stats and condition.instruction:
        return condition.instruction.format(female_pct=item.female_pct, male_pct=100 - item.female_pct)
    return condition.instruction


def prompt_turns(item: WinogenderItem, condition: Condition) -> PromptTurns:
    """The item's turns; the CoT follow-up (by default) repeats the plain question."""
    question = question_text(item)
    instruction = instruction_for(item, condition)
    human = f"{question}\n{instruction}" if instruction else question
    return condition_turns(condition, human=human, answer_prefix=item.prefix, follow_up=question)


def render(item: WinogenderItem, condition: Condition) -> list[EvalPrompt]:
    """One prompt per occupation."""
    return [
        EvalPrompt(
            benchmark=BENCHMARK,
            condition=condition.name,
            item_id=item.occupation,
            variant=None,
            category=item.occupation,
            cluster=item.occupation,
            turns=prompt_turns(item, condition),
            candidates=candidates(item),
            item=item,
        )
    ]


def sample_columns(prompt: EvalPrompt, scores: AnswerScores | None) -> dict[str, Any]:
    """The Winogender columns of a samples row (see schemas.tables.SAMPLES_SCHEMA); ``scores`` is None on
    an error row (its probabilities are null)."""
    item = prompt.item
    if not isinstance(item, WinogenderItem):
        raise TypeError(f"expected a WinogenderItem, got {type(item).__name__}")
    return {
        "wg_pronoun_case": item.pronoun_case,
        "wg_bls_pct_female": item.bls_pct_female,
        "p_female": scores.prob("female") if scores else None,
        "p_male": scores.prob("male") if scores else None,
        "p_neutral": scores.prob("neutral") if scores else None,
    }


class WinogenderBenchmark(Benchmark):
    """Winogender as a :class:`~evals.protocol.Benchmark` (the functions above, declared in one place)."""

    name = BENCHMARK
    title = "Winogender"
    spec_model = WinogenderSpec
    conditions = MappingProxyType(WINOGENDER_CONDITIONS)
    columns = tuple(WINOGENDER_SAMPLE_FIELDS)
    score_columns = ("p_female", "p_male", "p_neutral")
    metric_descriptions = MappingProxyType(
        {name: METRIC_DESCRIPTIONS[name] for name in winogender_metric_functions.METRICS}
    )
    headlines = (Headline("pearson_r", "fisher_z", "Winogender ρ"),)

    def planned_items(self, spec: WinogenderSpec) -> int:
        return min(spec.limit or ITEMS, ITEMS)

    def load_items(self, spec: WinogenderSpec, sources: DatasetSources, seed: int) -> list[WinogenderItem]:
        return load_items(spec, sources, seed)

    def data_files(self, spec: WinogenderSpec, sources: DatasetSources) -> list[dict[str, Any]]:
        return registered_files(sources, [TEMPLATES_KEY, STATS_KEY])

    def preview_item(
        self, spec: WinogenderSpec, sources: DatasetSources, *, index: int, category: str | None
    ) -> WinogenderItem:
        """The ``index``-th occupation, or the occupation named by ``category``."""
        if category is not None and index != 0:
            raise InvalidInputError("--category names one Winogender item (an occupation); drop --index")
        items = load_items(spec, sources, 0)
        if category is not None and category not in {item.occupation for item in items}:
            raise InvalidInputError(
                f"unknown occupation {category!r}; Winogender occupations: {', '.join(i.occupation for i in items)}",
                field="category",
            )
        item: WinogenderItem = super().preview_item(spec, sources, index=index, category=category)
        return item

    def category_of(self, item: WinogenderItem) -> str:
        return item.occupation

    def render(self, item: WinogenderItem, condition: Condition) -> list[EvalPrompt]:
        return render(item, condition)

    def candidates(self, item: WinogenderItem) -> tuple[Candidate, ...]:
        return candidates(item)

    def sample_columns(self, prompt: EvalPrompt, scores: AnswerScores | None) -> dict[str, Any]:
        return sample_columns(prompt, scores)

    def metrics(self, samples: pl.DataFrame, key: CellKey, settings: BootstrapSettings) -> list[MetricRow]:
        return winogender_metric_functions.winogender_metrics(samples, key, settings)

    def cluster_sums(self, samples: pl.DataFrame, metric: str, method: str = "expected") -> ClusterSums:
        return winogender_metric_functions.winogender_cluster_sums(samples, metric, method)


WINOGENDER = WinogenderBenchmark()
"""The Winogender benchmark."""
