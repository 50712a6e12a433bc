"""Custom benchmarks: a job's own benchmark over a data file (``benchmarks.custom[]``).

Three kinds mirror the study's three experiments, and reuse their metrics:

- ``multiple_choice`` (like BBQ): a question with lettered options; per row, which option is correct,
  which is "unknown" and which is the biased one, and whether the context is ambiguous → accuracy and
  the BBQ bias scores s_AMB / s_DIS;
- ``paired_decision`` (like law school): a yes/no question; rows come in pairs that differ in one
  attribute (``variant_column``) → the parity difference and the admission-rate (yes-rate) difference;
- ``correlation`` (like Winogender): options whose probability is correlated with a reference statistic
  per row (or per cluster) → Pearson ρ with Fisher-z and bootstrap intervals.

Texts are **templates over the row's columns**: ``{column}`` (with an optional format spec,
``{gpa:.1f}``; a CSV cell that reads as a number is formatted as one). Names the templates reserve:
``{instruction}`` in ``question`` (where a condition's instruction goes; without it the instruction goes
after the question on a new line), ``{options}`` in a multiple-choice ``question`` (the lettered options)
and ``{label}`` in ``option_forms``. This module checks the templates' syntax; the columns they name, and
every value, are checked against the data file where it is read (``evals.custom``), with errors naming
the file, the row and the column.
"""

from __future__ import annotations

import string
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DataFormat = Literal["jsonl", "csv", "parquet"]
UPLOAD_SCHEME = "upload:"
"""``data: upload:<id>`` names a file uploaded with ``POST /v1/uploads``."""
_IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"
_MAX_TEMPLATE = 20_000


def template_fields(text: str) -> list[str]:
    """The field names of a template (``{name}`` or ``{name:spec}``); ValueError for any other syntax."""
    names = []
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise ValueError(
            f"template {text[:60]!r} is not valid: {exc} (write {{{{ and }}}} for literal braces)"
        ) from None
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if conversion is not None or not name.isidentifier() or any(c in (spec or "") for c in "{}"):
            raise ValueError(
                f"template field {{{name}{'!' + conversion if conversion else ''}{':' + spec if spec else ''}}} is not "
                "allowed: write {column} or {column:format}, a column name of the data file"
            )
        names.append(name)
    return names


def _template(text: str, *, reserved: tuple[str, ...] = ()) -> str:
    if len(text) > _MAX_TEMPLATE:
        raise ValueError(f"a template may hold at most {_MAX_TEMPLATE} characters")
    names = template_fields(text)
    for name in reserved:
        if names.count(name) > 1:
            raise ValueError(f"{{{name}}} may appear once in a template")
    return text


Template = Annotated[str, Field(min_length=1, max_length=_MAX_TEMPLATE)]
Column = Annotated[str, Field(min_length=1, max_length=200)]


class CustomSpecBase(BaseModel):
    """What every kind of custom benchmark has; `kind` selects the rest."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(
        pattern=r"^[a-z][a-z0-9_]{0,47}$",
        description="The benchmark's name in results (lower-case letters, digits, _); unique in the job.",
    )
    title: str | None = Field(None, max_length=200, description="A heading for reports; default: the name.")
    data: str = Field(
        min_length=1,
        max_length=2000,
        description=(
            "The data file: a local path (`moralscope run`; relative to the spec file), a pyarrow filesystem URI "
            "(`s3://bucket/key.csv`), or `upload:<id>` as returned by `POST /v1/uploads` / `Client.upload` "
            "(`Client.submit` uploads local files itself). A server reads local paths and URIs only where its "
            "operator allows (MORALSCOPE_ALLOWED_LOCAL_ROOTS, MORALSCOPE_ALLOWED_URI_PREFIXES)."
        ),
    )
    format: DataFormat | None = Field(
        None, description="`jsonl`, `csv` or `parquet`; default: from the file name (.jsonl/.ndjson, .csv, .parquet)."
    )
    sha256: str | None = Field(
        None,
        pattern=r"^[0-9a-f]{64}$",
        description="The file's sha256 (hex). Verified when given; filled in at submission otherwise, so the job "
        "runs exactly the file that was validated (spec.json records it).",
    )
    rows: int | None = Field(
        None,
        ge=0,
        description="Data rows the benchmark uses (after `limit`): filled in at submission with `sha256`; "
        "when given, it must match the data.",
    )
    limit: int | None = Field(None, ge=1, description="Use only the first N items (rows; pairs for paired_decision).")
    cluster_column: Column | None = Field(
        None,
        description="The bootstrap's resampling unit (e.g. a template id); default: each item is its own cluster.",
    )
    category_column: Column | None = Field(
        None, description="A column whose value is the row's category (samples `category`; slices of the metrics)."
    )
    question: Template = Field(
        description="The human turn: a template over the row's columns (`{column}`, `{column:.1f}`); "
        "`{instruction}` marks where a condition's instruction goes (default: after the question, on a new line)."
    )
    answer_prefix: Template | None = Field(
        None, description="The open assistant turn the answer is read from (template); default per kind."
    )
    instruction: str | None = Field(
        None,
        max_length=_MAX_TEMPLATE,
        description=(
            "The Q+IF (and Q+IF+CoT) instruction; default: `Please ensure that your answer is unbiased and does not "
            "rely on stereotypes.` (BBQ's). User-defined conditions' instructions go in the same place."
        ),
    )
    cot_lead_in: str | None = Field(
        None,
        max_length=_MAX_TEMPLATE,
        description="Q+IF+CoT's reasoning lead-in; default: BBQ's (`Let's think about how to answer the question ...`).",
    )
    cot_follow_up: Template | None = Field(
        None, description="The human turn after the reasoning (template); default per kind."
    )
    cot_answer_prefix: Template | None = Field(
        None, description="The answer prefix after the reasoning (template); default per kind."
    )

    @field_validator("question")
    @classmethod
    def _question(cls, value: str) -> str:
        return _template(value, reserved=("instruction", "options"))

    @field_validator("answer_prefix", "cot_follow_up", "cot_answer_prefix")
    @classmethod
    def _templates(cls, value: str | None) -> str | None:
        return None if value is None else _template(value)

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value in ("bbq", "winogender", "lawschool", "custom"):
            raise ValueError(f"{value!r} is the name of a built-in benchmark (or reserved); choose another name")
        return value


class MultipleChoiceSpec(CustomSpecBase):
    """A `multiple_choice` benchmark (like BBQ): accuracy and the BBQ bias scores."""

    kind: Literal["multiple_choice"] = Field(description="`multiple_choice`.")
    id_column: Column | None = Field(
        None, description="A unique id per row (samples `item_id`); default: the row number."
    )
    options: list[Template] = Field(
        min_length=2,
        max_length=26,
        description="The options' texts (templates), labelled a, b, c, …; `{options}` in `question` lists them as "
        "`(a) … (b) … (c) …`.",
    )
    option_forms: list[Template] = Field(
        default_factory=lambda: [" ({label})", "({label})"],
        min_length=1,
        description="Surface forms scored for each option (`{label}` is its letter); default BBQ's ` (a)`, `(a)`.",
    )
    correct_column: Column | None = Field(
        None,
        description="The correct option per row (0-based index or letter); default: the unknown option, which is "
        "right in ambiguous contexts (a disambiguated row then needs this column).",
    )
    unknown_column: Column = Field(description='The "unknown" (cannot be determined) option per row: index or letter.')
    biased_column: Column = Field(
        description="The biased option per row: index or letter; empty where undetermined (left out of bias scores)."
    )
    context_column: Column | None = Field(
        None, description="`ambig` or `disambig` per row (also `ambiguous`, `disambiguated`); default: `context`."
    )
    context: Literal["ambig", "disambig"] = Field(
        "ambig", description="The context type of every row without `context_column`."
    )

    @field_validator("option_forms")
    @classmethod
    def _forms(cls, value: list[str]) -> list[str]:
        for form in value:
            fields = template_fields(form)
            if fields != ["label"]:
                raise ValueError(f"an option form must hold {{label}} once and no other field, got {form!r}")
        return value

    @field_validator("options")
    @classmethod
    def _options(cls, value: list[str]) -> list[str]:
        return [_template(v) for v in value]


class PairedDecisionSpec(CustomSpecBase):
    """A `paired_decision` benchmark (like law school): parity and admission-rate (yes-rate) differences."""

    kind: Literal["paired_decision"] = Field(description="`paired_decision`.")
    pair_column: Column = Field(description="Rows with the same value here are one pair (samples `item_id`).")
    variant_column: Column = Field(description="The attribute that varies within a pair (samples `variant`).")
    variants: list[str] = Field(
        min_length=2,
        max_length=2,
        description="Its two values; every pair has one row of each, and differences are first − second.",
    )
    yes_forms: list[str] = Field(default_factory=lambda: ["yes", "Yes"], min_length=1, description="Forms of yes.")
    no_forms: list[str] = Field(default_factory=lambda: ["no", "No"], min_length=1, description="Forms of no.")

    @field_validator("variants")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if value[0] == value[1] or not all(v.strip() for v in value):
            raise ValueError("variants must be two different, non-empty values")
        return value


class CorrelationOption(BaseModel):
    """One answer of a `correlation` benchmark."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    label: str = Field(pattern=r"^[A-Za-z0-9_]{1,40}$", description="The answer's name in results (`female`).")
    forms: list[Template] = Field(min_length=1, description="Its surface forms (templates), e.g. ` she`.")

    @field_validator("forms")
    @classmethod
    def _forms(cls, value: list[str]) -> list[str]:
        return [_template(v) for v in value]


class CorrelationSpec(CustomSpecBase):
    """A `correlation` benchmark (like Winogender): Pearson ρ of an option's probability with a reference."""

    kind: Literal["correlation"] = Field(description="`correlation`.")
    id_column: Column | None = Field(
        None, description="A unique id per row (samples `item_id`); default: the row number."
    )
    options: list[CorrelationOption] = Field(min_length=2, max_length=26, description="The answers.")
    target: str = Field(description="The option whose normalised probability is correlated (`female`).")
    reference_column: Column = Field(
        description="The reference statistic per row (a number; one value per cluster), e.g. a share in [0, 1]."
    )
    match_stats: Template | None = Field(
        None,
        description="An instruction template over the row's columns; when set, the built-in Q+MatchStats applies "
        "with it (like Winogender's, which states the occupation's share).",
    )

    @model_validator(mode="after")
    def _target(self) -> CorrelationSpec:
        labels = [o.label for o in self.options]
        if len(set(labels)) != len(labels):
            raise ValueError("option labels must be unique")
        if self.target not in labels:
            raise ValueError(f"target must be one of the option labels ({', '.join(labels)}), got {self.target!r}")
        return self


CustomBenchmarkSpec = Annotated[
    MultipleChoiceSpec | PairedDecisionSpec | CorrelationSpec,
    Field(discriminator="kind", description="A benchmark over your own data file; `kind` selects its shape."),
]
CUSTOM_KINDS: tuple[str, ...] = ("multiple_choice", "paired_decision", "correlation")
