"""Arrow schemas of the two result tables (SPEC §8), versioned.

``samples``: one row per (model, benchmark, condition, item, variant, sample).
``metrics``: one row per (model, benchmark, condition, slice, metric, method, ci_method).

Benchmark-specific columns are nullable and named with their benchmark's prefix; every column is
documented in its field metadata (``description``). Bump :data:`SCHEMA_VERSION` on any change; it is
stored in each file's schema metadata under ``moralscope.schema_version``.

A job's samples table is :data:`SAMPLES_SCHEMA` — the common columns and the built-in benchmarks'
columns, always all present so that every job's file reads alike — followed by the columns its other
benchmarks (plugins, custom benchmarks) declare, in the job's benchmark order (:func:`samples_schema`;
each benchmark lists its columns in ``evals.protocol.Benchmark.columns``; the study's and the custom
kinds' are in :mod:`schemas.benchmark_columns`). Such extra columns are nullable, documented like the
others, and part of schema 2.0: read columns by name.

Version 2.0 (from 1.0): samples gain ``error`` (a row the engine could not score is kept, with its
cause, and null scores) and ``computed_tokens`` (tokens actually computed, after prefix-cache hits);
score columns became nullable. Metrics gain ``baseline``: the ``delta_*`` rows are paired changes of a
condition against that baseline condition (self-correction effects).
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from schemas.benchmark_columns import (
    BBQ_SAMPLE_FIELDS,
    CORRELATION_SAMPLE_FIELDS,
    LAWSCHOOL_SAMPLE_FIELDS,
    MULTIPLE_CHOICE_SAMPLE_FIELDS,
    WINOGENDER_SAMPLE_FIELDS,
)
from schemas.benchmark_columns import column as _field

__all__ = [
    "BBQ_SAMPLE_FIELDS",
    "COMMON_SAMPLE_FIELDS",
    "CORRELATION_SAMPLE_FIELDS",
    "LAWSCHOOL_SAMPLE_FIELDS",
    "METRICS_SCHEMA",
    "METRIC_DESCRIPTIONS",
    "MULTIPLE_CHOICE_SAMPLE_FIELDS",
    "SAMPLES_SCHEMA",
    "SCHEMA_VERSION",
    "WINOGENDER_SAMPLE_FIELDS",
    "samples_schema",
    "schema_version_of",
]

SCHEMA_VERSION = "2.0"
SCHEMA_VERSION_KEY = b"moralscope.schema_version"


def _schema(table: str, fields: list[pa.Field]) -> pa.Schema:
    return pa.schema(
        fields, metadata={SCHEMA_VERSION_KEY: SCHEMA_VERSION.encode(), b"moralscope.table": table.encode()}
    )


COMMON_SAMPLE_FIELDS: list[pa.Field] = [
    # identity
    _field("model", pa.string(), "The model's key in the job (alias or name)."),
    _field(
        "model_labels",
        pa.string(),
        "The model's free labels as a JSON object (params_b, rlhf_steps, ...).",
    ),
    _field("benchmark", pa.string(), "bbq | winogender | lawschool, or a plugin or custom benchmark's name."),
    _field(
        "condition",
        pa.string(),
        "The condition's name (Q, Q+IF, Q+IF+CoT, Q+MatchStats or user-defined).",
    ),
    _field(
        "item_id",
        pa.string(),
        "The item's id within its benchmark (BBQ: Category/example_id; Winogender: occupation; law school: row; "
        "custom: the id column or row number, paired_decision: the pair).",
    ),
    _field(
        "variant",
        pa.string(),
        "Law school: the race the student is presented as (Black | white); paired_decision: the row's value of "
        "the varied attribute; else empty.",
        nullable=True,
    ),
    _field(
        "sample",
        pa.int32(),
        "Index of the reasoning sample (CoT conditions with several samples); else 0.",
    ),
    _field(
        "category",
        pa.string(),
        "BBQ category; Winogender occupation; law school: empty; custom: the category column's value.",
        nullable=True,
    ),
    _field(
        "cluster",
        pa.string(),
        "The bootstrap cluster (BBQ template, Winogender occupation, law-school student; custom: the cluster "
        "column, else the item).",
    ),
    # prompt and reasoning
    _field("prompt", pa.string(), "The exact prompt text that was scored (rendered in the model's format)."),
    _field("prompt_sha256", pa.string(), "sha256 of `prompt` (hex)."),
    _field("reasoning", pa.string(), "CoT conditions: the sampled reasoning text; else empty.", nullable=True),
    # candidates
    _field(
        "candidates",
        pa.list_(pa.string()),
        "Answer labels in order (a/b/c; female/male/neutral; yes/no).",
    ),
    _field(
        "candidate_logprobs",
        pa.list_(pa.float64()),
        "log of each answer's probability: log-sum-exp over its surface forms' summed token log-probs (nats); "
        "null on an error row.",
        nullable=True,
    ),
    _field(
        "candidate_probs",
        pa.list_(pa.float64()),
        "Each answer's probability normalised over the answers; null on an error row.",
        nullable=True,
    ),
    _field(
        "candidate_mass",
        pa.float64(),
        "Total probability of all answers' surface forms (unnormalised); null on an error row.",
        nullable=True,
    ),
    _field("chosen", pa.string(), "The answer with the highest probability; null on an error row.", nullable=True),
    _field(
        "error",
        pa.string(),
        "Why this row could not be scored (e.g. the prompt exceeds the model's context); null when it was. "
        "Error rows have null scores, are left out of every metric and counted in its n_excluded.",
        nullable=True,
    ),
    # token accounting
    _field("prompt_tokens", pa.int32(), "Tokens in the scored prompt (0 when not known on an error row)."),
    _field("continuation_tokens", pa.int32(), "Tokens scored over all surface forms of all answers."),
    _field(
        "computed_tokens",
        pa.int32(),
        "Prompt and continuation tokens the engine computed for this row, after prefix-cache hits (a prefix "
        "shared within a batch counts for the first row that needed it). An operational figure: it depends "
        "on what was cached, so it may differ between runs whose scores are identical.",
        nullable=True,
    ),
    _field(
        "reasoning_tokens",
        pa.int32(),
        "Tokens generated for the reasoning (CoT); else empty.",
        nullable=True,
    ),
]
"""Columns every row has, whatever its benchmark."""

SAMPLES_SCHEMA = _schema(
    "samples", COMMON_SAMPLE_FIELDS + BBQ_SAMPLE_FIELDS + WINOGENDER_SAMPLE_FIELDS + LAWSCHOOL_SAMPLE_FIELDS
)
"""The samples table of every job whose benchmarks are built in (schema 2.0 exactly)."""


def samples_schema(extra: Sequence[pa.Field] = ()) -> pa.Schema:
    """The samples schema of a job: :data:`SAMPLES_SCHEMA`, then the ``extra`` columns its other benchmarks
    declare (in order; a name may appear once; none may redefine a column of SAMPLES_SCHEMA)."""
    if not extra:
        return SAMPLES_SCHEMA
    names = [f.name for f in extra]
    clash = [n for n in names if n in SAMPLES_SCHEMA.names or names.count(n) > 1]
    if clash:
        raise ValueError(f"samples column {clash[0]!r} is declared twice (or redefines a built-in column)")
    return _schema("samples", [*SAMPLES_SCHEMA, *extra])


METRICS_SCHEMA = _schema(
    "metrics",
    [
        _field("model", pa.string(), "The model's key in the job."),
        _field("model_labels", pa.string(), "The model's free labels as a JSON object."),
        _field("benchmark", pa.string(), "bbq | winogender | lawschool, or a plugin or custom benchmark's name."),
        _field("condition", pa.string(), "The condition's name."),
        _field(
            "slice",
            pa.string(),
            "BBQ (and multiple_choice with a category column): a category or `overall` (pooled); otherwise `overall`.",
        ),
        _field(
            "metric",
            pa.string(),
            "The metric's name (see METRIC_DESCRIPTIONS, and each benchmark's metric_descriptions); `delta_<metric>` "
            "rows are paired changes against `baseline`.",
        ),
        _field(
            "method",
            pa.string(),
            "`argmax` (counts of chosen answers) or `expected` (probability-weighted counts).",
        ),
        _field("value", pa.float64(), "The metric's value; NaN where undefined.", nullable=True),
        _field("ci_low", pa.float64(), "Lower end of the interval; NaN where none.", nullable=True),
        _field("ci_high", pa.float64(), "Upper end of the interval; NaN where none.", nullable=True),
        _field("ci_method", pa.string(), "`bootstrap` (clustered, seeded), `fisher_z` (analytic), or `none`."),
        _field("confidence", pa.float64(), "The interval's coverage, e.g. 0.95."),
        _field("n", pa.int64(), "Rows the value is computed from."),
        _field("n_clusters", pa.int64(), "Clusters (templates, occupations, students) the rows come from."),
        _field(
            "n_excluded",
            pa.int64(),
            "Rows of the cell left out of this value: error rows, rows missing a probability, BBQ rows whose "
            "biased option is undetermined, and rows whose pair (law school: the student's other race) is missing.",
        ),
        _field(
            "baseline",
            pa.string(),
            "`delta_*` rows: the condition this row's condition is compared with (value = metric under `condition` "
            "− metric under `baseline`, on the items scored under both; n counts those paired items, n_excluded the "
            "items of either cell left out); empty for every other row.",
            nullable=True,
        ),
    ],
)

METRIC_DESCRIPTIONS: dict[str, str] = {
    "accuracy_ambig": "BBQ: share of ambiguous-context rows answered correctly (the unknown option).",
    "accuracy_disambig": "BBQ: share of disambiguated-context rows answered correctly.",
    "bias_disambig": "BBQ s_DIS = 2 · n_biased / n_non_unknown − 1 over disambiguated rows.",
    "bias_ambig": (
        "BBQ s_AMB = (1 − acc) · (2 · n_biased / n_non_unknown − 1); acc and the counts over the ambiguous rows "
        "whose biased option is determined (as the official BBQ analysis script does)."
    ),
    "n_undetermined": "BBQ: rows whose biased option could not be determined (excluded from bias scores).",
    "pearson_r": "Winogender: Pearson ρ over occupations between p_female and bls_pct_female/100.",
    "mean_p_female": "Winogender: mean normalised probability of the female pronoun.",
    "mean_p_male": "Winogender: mean normalised probability of the male pronoun.",
    "mean_p_neutral": "Winogender: mean normalised probability of the neutral pronoun.",
    "parity_difference": "Law school: mean over students of p_yes(Black) − p_yes(white); < 0 disfavours Black students.",
    "admission_rate_difference": "Law school: argmax admission rate (Black) − admission rate (white).",
    "mean_p_yes_black": "Law school: mean p_yes when the student is presented as Black.",
    "mean_p_yes_white": "Law school: mean p_yes when the student is presented as white.",
}
"""The study's metrics (each built-in benchmark declares its share as ``Benchmark.metric_descriptions``;
a ``multiple_choice`` custom benchmark reports BBQ's, the other kinds and plugins declare their own).
For any metric ``M``, rows named ``delta_M`` are paired effects: M(condition) − M(``baseline``)."""


EFFECT_DESCRIPTION = (
    "Paired change against the baseline condition (Q): {metric} under the row's condition minus {metric} under the "
    "baseline, both on the items scored under both conditions, with a clustered paired bootstrap interval."
)
"""What a `delta_<metric>` row means (evals.metrics.effects)."""
METRIC_DESCRIPTIONS.update(
    {
        f"delta_{metric}": EFFECT_DESCRIPTION.format(metric=metric)
        # the built-in benchmarks' headline metrics (Benchmark.headlines): each has its effect rows
        for metric in ("bias_ambig", "bias_disambig", "accuracy_ambig", "pearson_r", "parity_difference")
    }
)


def schema_version_of(schema: pa.Schema) -> str | None:
    """The moralscope schema version stored in a table's metadata, if any."""
    metadata = schema.metadata or {}
    value = metadata.get(SCHEMA_VERSION_KEY)
    return value.decode() if value is not None else None
