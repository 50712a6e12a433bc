"""The samples table's benchmark columns: the study's three benchmarks' and the custom kinds'.

:mod:`schemas.tables` assembles them: the built-in benchmarks' columns are always part of
``SAMPLES_SCHEMA``; a custom kind's (``multiple_choice``: ``mc_*``; ``correlation``: ``corr_*``) are appended to
the samples of a job that has such a benchmark. Every column is nullable and documented.
"""

from __future__ import annotations

import pyarrow as pa


def column(name: str, type_: pa.DataType, description: str, *, nullable: bool = False) -> pa.Field:
    """A samples or metrics column with its description in the field metadata."""
    return pa.field(name, type_, nullable=nullable, metadata={"description": description})


_field = column

BBQ_SAMPLE_FIELDS: list[pa.Field] = [
    _field("bbq_context_condition", pa.string(), "BBQ: ambig | disambig.", nullable=True),
    _field("bbq_question_polarity", pa.string(), "BBQ: neg | nonneg.", nullable=True),
    _field("bbq_label", pa.string(), "BBQ: the correct answer's label.", nullable=True),
    _field("bbq_unknown", pa.string(), "BBQ: the label of the unknown option.", nullable=True),
    _field(
        "bbq_biased",
        pa.string(),
        "BBQ: the label of the biased option; empty where undetermined (SPEC §3).",
        nullable=True,
    ),
    _field("correct", pa.bool_(), "BBQ, multiple_choice: the chosen answer is the correct one.", nullable=True),
    _field(
        "p_correct", pa.float64(), "BBQ, multiple_choice: normalised probability of the correct answer.", nullable=True
    ),
    _field(
        "p_unknown", pa.float64(), "BBQ, multiple_choice: normalised probability of the unknown option.", nullable=True
    ),
    _field(
        "p_biased", pa.float64(), "BBQ, multiple_choice: normalised probability of the biased option.", nullable=True
    ),
]
"""BBQ's columns (``evals.bbq``)."""

WINOGENDER_SAMPLE_FIELDS: list[pa.Field] = [
    _field("wg_pronoun_case", pa.string(), "Winogender: nominative | possessive | accusative.", nullable=True),
    _field(
        "wg_bls_pct_female",
        pa.float64(),
        "Winogender: % women in the occupation (US BLS).",
        nullable=True,
    ),
    _field(
        "p_female",
        pa.float64(),
        "Winogender: P(female) / (P(female) + P(male) + P(neutral)).",
        nullable=True,
    ),
    _field("p_male", pa.float64(), "Winogender: normalised probability of the male pronoun.", nullable=True),
    _field(
        "p_neutral",
        pa.float64(),
        "Winogender: normalised probability of the neutral pronoun.",
        nullable=True,
    ),
]
"""Winogender's columns (``evals.winogender``)."""

LAWSCHOOL_SAMPLE_FIELDS: list[pa.Field] = [
    _field("ls_race", pa.string(), "Law school: the student's race in the data.", nullable=True),
    _field("ls_sex", pa.string(), "Law school: female | male.", nullable=True),
    _field("ls_lsat", pa.float64(), "Law school: raw LSAT score.", nullable=True),
    _field("ls_ugpa", pa.float64(), "Law school: undergraduate GPA.", nullable=True),
    _field("p_yes", pa.float64(), "Law school, paired_decision: P(yes) / (P(yes) + P(no)).", nullable=True),
    _field("p_yes_raw", pa.float64(), "Law school, paired_decision: the raw (unnormalised) P(yes).", nullable=True),
]
"""Law school's columns (``evals.lawschool``)."""

MULTIPLE_CHOICE_SAMPLE_FIELDS: list[pa.Field] = [
    _field("mc_context_condition", pa.string(), "multiple_choice: ambig | disambig.", nullable=True),
    _field("mc_label", pa.string(), "multiple_choice: the correct option's label (a, b, …).", nullable=True),
    _field("mc_unknown", pa.string(), "multiple_choice: the label of the unknown option.", nullable=True),
    _field(
        "mc_biased",
        pa.string(),
        "multiple_choice: the label of the biased option; empty where the data leaves it undetermined.",
        nullable=True,
    ),
]
"""Columns of custom ``multiple_choice`` benchmarks (``evals.custom``), with ``correct`` and ``p_*`` of BBQ's;
only in the samples of jobs that have one."""

CORRELATION_SAMPLE_FIELDS: list[pa.Field] = [
    _field("corr_reference", pa.float64(), "correlation: the row's reference statistic.", nullable=True),
    _field(
        "corr_p_target",
        pa.float64(),
        "correlation: the target option's probability, normalised over the options (each option's is in "
        "candidate_probs).",
        nullable=True,
    ),
]
"""Columns of custom ``correlation`` benchmarks (``evals.custom``); only in the samples of jobs that have one.
A ``paired_decision`` benchmark uses law school's ``p_yes`` and ``p_yes_raw``."""
