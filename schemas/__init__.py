"""Data shared by every part of moralscope: the job spec, dialogues, engine requests, job views and
the Arrow schemas of the result tables. Models only: no I/O, no heavy imports.

The names below are loaded on first use (PEP 562), so importing one submodule (``schemas.inference``
for the engines) does not import the others, nor pydantic or pyarrow.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_MODULES: dict[str, str] = {
    "BBQ_CATEGORIES": "schemas.spec",
    "BENCHMARKS": "schemas.spec",
    "BUILTIN_CONDITIONS": "schemas.spec",
    "BbqSpec": "schemas.spec",
    "BenchmarksSpec": "schemas.spec",
    "BootstrapSpec": "schemas.spec",
    "ConditionSpec": "schemas.spec",
    "ContinuationScore": "schemas.inference",
    "CotSamplingSpec": "schemas.spec",
    "CotTurnsSpec": "schemas.spec",
    "Dialogue": "schemas.dialogue",
    "EngineConfig": "schemas.inference",
    "ErrorBody": "schemas.jobs",
    "GenerateRequest": "schemas.inference",
    "GenerateResult": "schemas.inference",
    "JobEvent": "schemas.jobs",
    "JobList": "schemas.jobs",
    "JobSpec": "schemas.spec",
    "JobState": "schemas.jobs",
    "JobView": "schemas.jobs",
    "LawSchoolSpec": "schemas.spec",
    "METRICS_SCHEMA": "schemas.tables",
    "ModelProgress": "schemas.jobs",
    "ModelSpec": "schemas.spec",
    "RequestCounts": "schemas.jobs",
    "ResolvedModel": "schemas.inference",
    "SAMPLES_SCHEMA": "schemas.tables",
    "SCHEMA_VERSION": "schemas.tables",
    "ScoreRequest": "schemas.inference",
    "ScoreResult": "schemas.inference",
    "Turn": "schemas.dialogue",
    "WinogenderSpec": "schemas.spec",
    "job_spec_json_schema": "schemas.spec",
    "render_human_assistant": "schemas.dialogue",
}
"""Where each exported name lives."""


def __getattr__(name: str) -> Any:
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_MODULES[name]), name)


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
