"""The ``benchmarks`` part of a job spec: which benchmarks run, and each one's settings.

Three kinds of benchmark can be selected:

- the **built-in** ones (``bbq``, ``winogender``, ``lawschool``), each a typed field whose model is here;
- **custom** benchmarks over a user's data file (``benchmarks.custom``, :mod:`schemas.custom`);
- **plugin** benchmarks, provided by installed packages through the ``moralscope.benchmarks`` entry point
  group and selected by their name as an extra key (``benchmarks: {toxicity_probe: {...}}``). This module
  only checks the key's shape and that its value is a mapping: the settings are validated against the
  plugin's own spec model by ``evals.benchmarks`` when a server or CLI that has the plugin installed
  loads the spec (at submission), so an unknown key is an error there, never silently ignored;

No I/O here: plugins and data files are looked at by ``evals``.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from schemas.custom import CustomBenchmarkSpec

BUILTIN_BENCHMARKS: tuple[str, ...] = ("bbq", "winogender", "lawschool")
"""The study's three benchmarks, in the order results list them."""

BENCHMARK_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,47}$"
"""What a plugin or custom benchmark may be called: it names result rows and folders of the job."""
_NAME = re.compile(BENCHMARK_NAME_PATTERN)
RESERVED_NAMES: frozenset[str] = frozenset({*BUILTIN_BENCHMARKS, "custom"})
"""Names no plugin or custom benchmark may take."""

BBQ_CATEGORIES: tuple[str, ...] = (
    "Age",
    "Disability_status",
    "Gender_identity",
    "Nationality",
    "Physical_appearance",
    "Race_ethnicity",
    "Race_x_SES",
    "Race_x_gender",
    "Religion",
    "SES",
    "Sexual_orientation",
)
"""The eleven BBQ category files (SPEC §3), in upstream order."""


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BbqSpec(_Spec):
    """BBQ (SPEC §3)."""

    categories: list[str] | None = Field(
        None,
        description="Category files to use; default: all eleven. Names as upstream, e.g. `Age`, `Race_x_SES`.",
    )
    limit: int | None = Field(None, ge=1, description="Use only the first N rows of each category (file order).")
    sample_per_category: int | None = Field(
        None, ge=1, description="Use N rows of each category drawn at random (seeded), kept in file order."
    )
    seed: int | None = Field(None, ge=0, description="Seed of the sampling; default: the job's seed.")

    @field_validator("categories")
    @classmethod
    def _known_categories(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("categories must list at least one category, or be omitted for all eleven")
        unknown = [c for c in value if c not in BBQ_CATEGORIES]
        if unknown:
            raise ValueError(f"unknown BBQ category {unknown[0]!r}; known categories: {', '.join(BBQ_CATEGORIES)}")
        if len(set(value)) != len(value):
            raise ValueError("categories must not repeat a category")
        return value

    @model_validator(mode="after")
    def _one_selection(self) -> BbqSpec:
        if self.limit is not None and self.sample_per_category is not None:
            raise ValueError("set either limit or sample_per_category, not both")
        return self

    @property
    def selected_categories(self) -> tuple[str, ...]:
        return tuple(self.categories) if self.categories else BBQ_CATEGORIES


class WinogenderSpec(_Spec):
    """Winogender (SPEC §4): the 60 occupation-referent templates."""

    limit: int | None = Field(None, ge=1, le=60, description="Use only the first N occupations (template order).")


class LawSchoolSpec(_Spec):
    """Law-school admissions (SPEC §5); every student is asked about as Black and as white."""

    limit: int | None = Field(None, ge=1, description="Use only the first N students (file order).")
    sample: int | None = Field(None, ge=1, description="Use N students drawn at random (seeded), kept in file order.")
    seed: int | None = Field(None, ge=0, description="Seed of the sampling; default: the job's seed.")

    @model_validator(mode="after")
    def _one_selection(self) -> LawSchoolSpec:
        if self.limit is not None and self.sample is not None:
            raise ValueError("set either limit or sample, not both")
        return self


PLUGIN_SETTINGS_DESCRIPTION = (
    "Any other key selects a **plugin benchmark** of that name: one an installed package provides through the "
    "`moralscope.benchmarks` entry point group. Its value is the plugin's settings (`{}` for its defaults). "
    "This schema accepts any mapping there; the settings are validated against the plugin's own spec model "
    "when a server or CLI that has the plugin installed loads the spec (an unknown name or a bad setting "
    "is refused there, naming the field)."
)


class BenchmarksSpec(BaseModel):
    """Which benchmarks to run; an omitted benchmark is not run. Other keys select plugin benchmarks."""

    model_config = ConfigDict(
        extra="allow",
        frozen=True,
        json_schema_extra={
            "additionalProperties": {"type": "object", "description": PLUGIN_SETTINGS_DESCRIPTION},
        },
    )

    bbq: BbqSpec | None = Field(None, description="BBQ settings (`{}` for every row of every category); omit to skip.")
    winogender: WinogenderSpec | None = Field(None, description="Winogender settings (`{}` for all 60); omit to skip.")
    lawschool: LawSchoolSpec | None = Field(
        None, description="Law-school settings (`{}` for all 21,791); omit to skip."
    )

    custom: list[CustomBenchmarkSpec] = Field(
        default_factory=list,
        max_length=50,
        description="Benchmarks over your own data files (JSONL, CSV or Parquet); see `benchmarks.custom[]`.",
    )

    @model_validator(mode="after")
    def _names(self) -> BenchmarksSpec:
        for key, value in self.plugins.items():
            if not _NAME.fullmatch(key):
                raise ValueError(
                    f"unknown benchmark key {key!r}: not a built-in benchmark ({', '.join(BUILTIN_BENCHMARKS)}), "
                    f"nor a plugin benchmark name (lower-case letters, digits and _)"
                )
            if not isinstance(value, dict):
                raise ValueError(
                    f"benchmarks.{key}: a plugin benchmark's settings must be a mapping ({{}} for its defaults), "
                    f"got {type(value).__name__}"
                )
        names = [entry.name for entry in self.custom]
        taken = [n for n in names if n in self.plugins]
        if taken:
            raise ValueError(f"custom benchmark {taken[0]!r} has the name of a plugin benchmark this job selects")
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"custom benchmark names must be unique, got {repeated[0]!r} more than once")
        if not self.selected:
            raise ValueError("select at least one benchmark: bbq, winogender, lawschool, a plugin or a custom one")
        return self

    @property
    def plugins(self) -> dict[str, Any]:
        """Plugin benchmarks selected by name (raw settings, validated by ``evals.benchmarks``)."""
        return dict(self.model_extra or {})

    @property
    def selected(self) -> tuple[str, ...]:
        """Selected benchmark names in the order results list them: built-in, plugins (by name), custom."""
        builtin = tuple(name for name in BUILTIN_BENCHMARKS if getattr(self, name) is not None)
        return builtin + tuple(sorted(self.plugins)) + tuple(entry.name for entry in self.custom)
