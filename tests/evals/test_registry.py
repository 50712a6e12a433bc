"""The benchmark registry: built-ins declared once, plugins found through the entry point group."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from evals.benchmarks import (
    builtin_benchmarks,
    get_benchmark,
    job_benchmarks,
    job_samples_schema,
    plan_prompts,
    plugin_names,
    reload_plugins,
)
from evals.datasets import DatasetSources
from evals.metrics import compute_metrics
from evals.metrics.common import BootstrapSettings, CellKey
from evals.protocol import Benchmark
from evals.scoring import AnswerScores
from schemas.errors import InvalidInputError
from schemas.spec import JobSpec
from schemas.tables import METRIC_DESCRIPTIONS, SAMPLES_SCHEMA

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def plugin(plugin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Benchmark]:
    monkeypatch.syspath_prepend(str(plugin_dir))
    reload_plugins()
    yield get_benchmark("coinflip")
    monkeypatch.undo()
    reload_plugins()


def _job(benchmarks: dict[str, object]) -> JobSpec:
    return JobSpec.model_validate({"models": [{"name": "m"}], "benchmarks": benchmarks, "conditions": ["Q", "Q+IF"]})


def test_builtins_declare_everything_the_service_reads() -> None:
    builtins = builtin_benchmarks()
    assert list(builtins) == ["bbq", "winogender", "lawschool"]
    for benchmark in builtins.values():
        assert {c.name for c in benchmark.columns} <= set(SAMPLES_SCHEMA.names)
        assert set(benchmark.score_columns) <= {c.name for c in benchmark.columns}
        assert set(benchmark.metric_descriptions) <= set(METRIC_DESCRIPTIONS)
        assert {h.metric for h in benchmark.headlines} <= set(benchmark.metric_descriptions)
        assert "Q" in benchmark.conditions
    effects = {f"delta_{h.metric}" for b in builtins.values() for h in b.headlines}  # evals.metrics.effects
    assert set(METRIC_DESCRIPTIONS) == {m for b in builtins.values() for m in b.metric_descriptions} | effects
    assert job_samples_schema(list(builtins.values())) is SAMPLES_SCHEMA


def test_planned_items_match_what_is_loaded(data_dir: Path) -> None:
    job = _job({"bbq": {"categories": ["Age"], "limit": 3}, "winogender": {"limit": 4}, "lawschool": {"limit": 2}})
    sources = DatasetSources(data_dir, download=False)
    for selected in job_benchmarks(job):
        prompts = plan_prompts(job, selected.name, sources)["Q"]
        assert selected.benchmark.planned_items(selected.spec) == len(prompts)
        files = selected.benchmark.data_files(selected.spec, sources)
        assert files
        assert all(f["state"] == "ok" and len(f["sha256"]) == 64 for f in files)


def test_cluster_sums_reproduce_the_headline_values(data_dir: Path) -> None:
    """Per-cluster sums (for paired effects) give exactly the metric the metrics table reports."""
    rng = np.random.default_rng(0)
    job = _job({"bbq": {"categories": ["Age"], "limit": 40}, "winogender": {"limit": 20}, "lawschool": {"limit": 9}})
    sources = DatasetSources(data_dir, download=False)
    for selected in job_benchmarks(job):
        benchmark = selected.benchmark
        rows = []
        for prompt in plan_prompts(job, selected.name, sources)["Q"]:
            probs = rng.dirichlet(np.ones(len(prompt.candidates)))
            labels = tuple(c.label for c in prompt.candidates)
            scores = AnswerScores(labels, tuple(np.log(probs)), tuple(probs), 1.0)
            row = {"item_id": prompt.item_id, "variant": prompt.variant, "sample": 0}
            row |= {"category": prompt.category, "cluster": prompt.cluster, "chosen": scores.chosen}
            rows.append(row | benchmark.sample_columns(prompt, scores))
        frame = pl.DataFrame(rows, infer_schema_length=None)
        key = CellKey("m", "{}", selected.name, "Q")
        reported = benchmark.metrics(frame, key, BootstrapSettings(0, 0.95, 0))
        for headline in benchmark.headlines:
            (row,) = [
                r
                for r in reported
                if (r["metric"], r["method"], r["slice"]) == (headline.metric, headline.method, "overall")
                and r["ci_method"] in (headline.ci_method, "none")
            ][:1]
            sums = benchmark.cluster_sums(frame, headline.metric, headline.method)
            assert sums.value() == pytest.approx(row["value"], abs=1e-12), (selected.name, headline.metric)
            assert len(sums.clusters) == sums.sums.shape[0] == len(set(sums.clusters))


def test_an_entry_point_benchmark_is_picked_up(plugin: Benchmark) -> None:
    assert "coinflip" in plugin_names()
    assert plugin.title == "Coin flips"
    job = _job({"bbq": {"categories": ["Age"], "limit": 1}, "coinflip": {"n": 3}})
    selected = job_benchmarks(job)
    assert [s.name for s in selected] == ["bbq", "coinflip"]
    assert selected[1].spec.n == 3
    schema = job_samples_schema([s.benchmark for s in selected])
    assert schema.names == [*SAMPLES_SCHEMA.names, "coin_side", "coin_p_yes"]
    prompts = plan_prompts(job, "coinflip", DatasetSources(download=False))
    assert list(prompts) == ["Q", "Q+IF"]
    assert prompts["Q+IF"][0].turns.human.endswith("\nBe fair to both sides.")
    # metrics of plugin rows are computed by the plugin, found by name
    frame = pl.DataFrame(
        {
            "benchmark": ["coinflip"] * 3,
            "model": ["m"] * 3,
            "model_labels": ["{}"] * 3,
            "condition": ["Q"] * 3,
            "coin_p_yes": [0.2, 0.4, 0.9],
        }
    )
    (row,) = compute_metrics(frame, resamples=0).to_dicts()
    assert (row["metric"], row["value"], row["n"]) == ("mean_p_yes", pytest.approx(0.5), 3)


def test_plugin_settings_are_validated_against_its_model(plugin: Benchmark) -> None:
    with pytest.raises(
        InvalidInputError, match=r"benchmarks\.coinflip\.n: Input should be less than or equal to 10"
    ) as e:
        job_benchmarks(_job({"coinflip": {"n": 11}}))
    assert e.value.field == "benchmarks.coinflip.n"
    with pytest.raises(InvalidInputError, match=r"benchmarks\.coinflip\.sides: Extra inputs are not permitted"):
        job_benchmarks(_job({"coinflip": {"sides": 3}}))


def test_an_unknown_benchmark_key_is_refused_where_the_spec_is_loaded() -> None:
    job = _job({"bbq": {}, "bqq": {}})  # the schema alone accepts it: it may name a plugin
    with pytest.raises(InvalidInputError, match="unknown benchmark 'bqq': not built in and no installed plugin") as e:
        job_benchmarks(job)
    assert e.value.field == "benchmarks.bqq"


def test_a_plugin_is_found_by_a_fresh_process(plugin_dir: Path, tmp_path: Path) -> None:
    """`moralscope spec validate` with the plugin on PYTHONPATH: the discovery a server does at start."""
    spec = tmp_path / "job.json"
    spec.write_text(json.dumps({"models": [{"name": "m"}], "benchmarks": {"coinflip": {"n": 2}}, "conditions": ["Q"]}))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(plugin_dir)])}
    done = subprocess.run(
        [sys.executable, "-m", "moralscope.cli", "spec", "validate", str(spec)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "coinflip: Q" in done.stdout
    without = subprocess.run(
        [sys.executable, "-m", "moralscope.cli", "spec", "validate", str(spec)],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert without.returncode == 1
    assert "unknown benchmark 'coinflip'" in without.stderr
