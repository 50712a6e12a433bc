"""Data shared by every part of moralscope: the job spec, dialogues, engine requests, job views and
the Arrow schemas of the result tables. Models only: no I/O, no heavy imports."""

from schemas.dialogue import Dialogue, Turn, render_human_assistant
from schemas.inference import (
    ContinuationScore,
    EngineConfig,
    GenerateRequest,
    GenerateResult,
    ResolvedModel,
    ScoreRequest,
    ScoreResult,
)
from schemas.jobs import ErrorBody, JobEvent, JobList, JobState, JobView, ModelProgress, RequestCounts
from schemas.spec import (
    BBQ_CATEGORIES,
    BENCHMARKS,
    BUILTIN_CONDITIONS,
    BbqSpec,
    BenchmarksSpec,
    BootstrapSpec,
    ConditionSpec,
    CotSamplingSpec,
    CotTurnsSpec,
    JobSpec,
    LawSchoolSpec,
    ModelSpec,
    WinogenderSpec,
    job_spec_json_schema,
)
from schemas.tables import METRICS_SCHEMA, SAMPLES_SCHEMA, SCHEMA_VERSION

__all__ = [
    "BBQ_CATEGORIES",
    "BENCHMARKS",
    "BUILTIN_CONDITIONS",
    "METRICS_SCHEMA",
    "SAMPLES_SCHEMA",
    "SCHEMA_VERSION",
    "BbqSpec",
    "BenchmarksSpec",
    "BootstrapSpec",
    "ConditionSpec",
    "ContinuationScore",
    "CotSamplingSpec",
    "CotTurnsSpec",
    "Dialogue",
    "EngineConfig",
    "ErrorBody",
    "GenerateRequest",
    "GenerateResult",
    "JobEvent",
    "JobList",
    "JobSpec",
    "JobState",
    "JobView",
    "LawSchoolSpec",
    "ModelProgress",
    "ModelSpec",
    "RequestCounts",
    "ResolvedModel",
    "ScoreRequest",
    "ScoreResult",
    "Turn",
    "WinogenderSpec",
    "job_spec_json_schema",
    "render_human_assistant",
]
