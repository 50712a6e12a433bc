"""The job spec: defaults, validation messages that name the field, and the exported JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from moralscope.specfile import load_job_spec
from schemas.errors import InvalidInputError
from schemas.spec import BUILTIN_CONDITIONS, JobSpec, job_spec_json_schema

ROOT = Path(__file__).resolve().parents[2]


def _errors(data: dict) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as info:
        JobSpec.model_validate(data)
    return [(".".join(str(p) for p in e["loc"]), e["msg"]) for e in info.value.errors()]


def test_defaults_select_everything() -> None:
    spec = JobSpec.model_validate({"models": [{"name": "smollm2-135m-instruct"}]})
    assert spec.condition_names == BUILTIN_CONDITIONS
    assert spec.benchmarks.selected == ("bbq", "winogender", "lawschool")
    assert spec.models[0].dtype == "float32"
    assert spec.bootstrap_seed == spec.seed == 0


def test_unknown_field_is_rejected_with_its_path() -> None:
    errors = _errors({"models": [{"name": "m", "temprature": 1}]})
    assert errors[0][0] == "models.0.temprature"
    assert "Extra inputs are not permitted" in errors[0][1]


def test_unknown_condition_names_the_builtins() -> None:
    (location, message), *_ = _errors({"models": [{"name": "m"}], "conditions": ["Q", "Q+CoT"]})
    assert location == "conditions"
    assert "'Q+CoT'" in message
    assert "Q+IF+CoT" in message


def test_unknown_bbq_category_lists_known_ones() -> None:
    (location, message), *_ = _errors(
        {"models": [{"name": "m"}], "benchmarks": {"bbq": {"categories": ["Age", "Height"]}}}
    )
    assert location == "benchmarks.bbq.categories"
    assert "'Height'" in message
    assert "Race_x_SES" in message


@pytest.mark.parametrize(
    ("data", "location", "fragment"),
    [
        ({"models": []}, "models", "at least 1"),
        ({"models": [{"name": "m", "dtype": "int4"}]}, "models.0.dtype", "float32"),
        ({"models": [{"name": "m"}, {"name": "m"}]}, "models", "unique"),
        ({"models": [{"name": "m"}], "benchmarks": {}}, "benchmarks", "at least one benchmark"),
        (
            {"models": [{"name": "m"}], "benchmarks": {"bbq": {"limit": 2, "sample_per_category": 3}}},
            "benchmarks.bbq",
            "not both",
        ),
        ({"models": [{"name": "m"}], "conditions": [{"name": "Q"}]}, "conditions.0.defined.name", "built-in"),
        ({"models": [{"name": "m"}], "conditions": ["Q", "Q"]}, "conditions", "unique"),
        ({"models": [{"name": "m"}], "cot": {"max_new_tokens": 0}}, "cot.max_new_tokens", "greater than or equal to 1"),
    ],
)
def test_constraints_have_clear_messages(data: dict, location: str, fragment: str) -> None:
    errors = _errors(data)
    assert any(loc.startswith(location) and fragment in msg for loc, msg in errors), errors


def test_user_defined_condition() -> None:
    spec = JobSpec.model_validate(
        {
            "models": [{"name": "m"}],
            "conditions": ["Q", {"name": "Q+Fair", "instruction": "Be fair.", "cot": {"lead_in": "Let's think."}}],
        }
    )
    assert spec.condition_names == ("Q", "Q+Fair")


def test_revisions_expand_into_one_model_each() -> None:
    spec = JobSpec.model_validate(
        {
            "models": [
                {
                    "name": "org/m",
                    "labels": {"family": "m", "rlhf_steps": 0},
                    "revisions": [
                        {"revision": "step50", "labels": {"rlhf_steps": 50}},
                        {"revision": "step100", "alias": "late", "labels": {"rlhf_steps": 100}},
                    ],
                },
                {"name": "other"},
            ]
        }
    )
    assert [(m.key, m.revision, m.labels) for m in spec.models] == [
        ("org/m@step50", "step50", {"family": "m", "rlhf_steps": 50}),
        ("late", "step100", {"family": "m", "rlhf_steps": 100}),
        ("other", None, {}),
    ]
    assert JobSpec.model_validate(spec.model_dump(mode="json")) == spec  # stored expanded: stable
    with pytest.raises(ValidationError, match="either revision or revisions"):
        JobSpec.model_validate({"models": [{"name": "m", "revision": "a", "revisions": [{"revision": "b"}]}]})
    with pytest.raises(ValidationError, match="'m@b' more than once"):
        JobSpec.model_validate({"models": [{"name": "m", "revisions": [{"revision": "b"}, {"revision": "b"}]}]})
    with pytest.raises(ValidationError, match="at least 1 item"):
        JobSpec.model_validate({"models": [{"name": "m", "revisions": []}]})


def test_spec_files(tmp_path: Path) -> None:
    assert load_job_spec(ROOT / "examples" / "quickstart.yaml").models[0].name == "smollm2-135m-instruct"
    assert len(load_job_spec(ROOT / "examples" / "paper-sweep.yaml").models) >= 3
    checkpoints = load_job_spec(ROOT / "examples" / "checkpoint-sweep.yaml")
    assert [m.labels["train_steps"] for m in checkpoints.models] == [8000, 36000, 143000]
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(InvalidInputError, match="must hold a mapping"):
        load_job_spec(bad)
    with pytest.raises(InvalidInputError, match="cannot read job spec"):
        load_job_spec(tmp_path / "missing.yaml")


def test_exported_json_schema_is_current() -> None:
    """schemas/jobspec.schema.json is what users validate against; regenerate with `make schema`."""
    committed = json.loads((ROOT / "schemas" / "jobspec.schema.json").read_text())
    assert committed == job_spec_json_schema()


def test_readme_spec_reference_is_current() -> None:
    """The README's job spec reference is generated from the schema; regenerate with `make docs`."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("update_readme", ROOT / "scripts" / "update_readme.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = (ROOT / "README.md").read_text()
    assert module.with_reference(text) == text
