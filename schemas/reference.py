"""The job spec reference in Markdown, generated from the pydantic models (README "Job spec reference")."""

from __future__ import annotations

import json
import types
import typing
from typing import Any, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from schemas.custom import (
    CorrelationOption,
    CorrelationSpec,
    CustomSpecBase,
    MultipleChoiceSpec,
    PairedDecisionSpec,
)
from schemas.spec import (
    BbqSpec,
    BenchmarksSpec,
    BootstrapSpec,
    ConditionSpec,
    CotSamplingSpec,
    CotTurnsSpec,
    JobSpec,
    LawSchoolSpec,
    ModelSpec,
    ReportSpec,
    RevisionSpec,
    WinogenderSpec,
)

SECTIONS: tuple[tuple[str, type[BaseModel]], ...] = (
    ("job", JobSpec),
    ("models[]", ModelSpec),
    ("models[].revisions[]", RevisionSpec),
    ("benchmarks", BenchmarksSpec),
    ("benchmarks.bbq", BbqSpec),
    ("benchmarks.winogender", WinogenderSpec),
    ("benchmarks.lawschool", LawSchoolSpec),
    ("benchmarks.custom[]", CustomSpecBase),
    ("benchmarks.custom[] with kind: multiple_choice", MultipleChoiceSpec),
    ("benchmarks.custom[] with kind: paired_decision", PairedDecisionSpec),
    ("benchmarks.custom[] with kind: correlation", CorrelationSpec),
    ("benchmarks.custom[].options[] (correlation)", CorrelationOption),
    ("conditions[] (user-defined)", ConditionSpec),
    ("conditions[].cot", CotTurnsSpec),
    ("cot", CotSamplingSpec),
    ("bootstrap", BootstrapSpec),
    ("report", ReportSpec),
)


def _type_name(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin is typing.Annotated:
        return _type_name(get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join(dict.fromkeys(_type_name(arg) for arg in get_args(annotation)))
    if origin is typing.Literal:
        return " \\| ".join(f"`{arg}`" for arg in get_args(annotation))
    if origin in (list, tuple):
        return f"list[{', '.join(_type_name(a) for a in get_args(annotation))}]"
    if origin is dict:
        return "mapping"
    if annotation is type(None):
        return "null"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "object"
    return getattr(annotation, "__name__", str(annotation))


def _default(field: Any) -> str:
    if field.default is PydanticUndefined and field.default_factory is None:
        return "**required**"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return "see below"
    return f"`{json.dumps(value)}`"


def job_spec_reference() -> str:
    """One Markdown table per part of the spec: field, type, default, description."""
    lines: list[str] = []
    for title, model in SECTIONS:
        lines += [f"**`{title}`** — {(model.__doc__ or '').strip().splitlines()[0]}", ""]
        lines += ["| field | type | default | description |", "|---|---|---|---|"]
        shared = (
            set(CustomSpecBase.model_fields)
            if model is not CustomSpecBase and issubclass(model, CustomSpecBase)
            else set()
        )
        for name, field in model.model_fields.items():
            if name in shared:
                continue
            description = (field.description or "").replace("|", "\\|").replace("\n", " ")
            lines.append(f"| `{name}` | {_type_name(field.annotation)} | {_default(field)} | {description} |")
        extra = model.model_config.get("json_schema_extra")
        other = extra.get("additionalProperties") if isinstance(extra, dict) else None
        if isinstance(other, dict):
            description = str(other.get("description", "")).replace("|", "\\|")
            lines.append(f"| *any other key* | object | – | {description} |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
