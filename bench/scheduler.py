"""The runner's dispatch on a simulated sweep: yesterday's group barrier against today's streaming.

A real local Ray hosts actors of the fake engine (``tests/support/fake_engine.py``) whose latency is
simulated and heavy-tailed: a request costs ``cost_s × X`` seconds, X Pareto(``--tail-alpha``)-distributed
with mean 1 and drawn from a hash of the prompt (fixed and seeded: the same request costs the same in both
runs, however it is batched), generation ``--generate-cost`` times more. Three models of different costs
and actor counts, each with a load time, run the same job (BBQ, Winogender and law school on real items,
the four built-in conditions, CoT reasoning) twice:

- **group barrier** (the runner before streaming, reimplemented here): models one after another; per model
  all reasoning, then all scoring; shards sent ``num_actors`` at a time and each group waits for its
  slowest shard;
- **streaming** (the real runner, ``Runner.run_job`` in this process on a temporary store): models side by
  side in placement groups, a bounded window of batches per model with prefix affinity, each CoT answer
  right after its reasoning, shards committed as they complete.

Figures, from the batches each actor really ran (its start and end, logged by the fake engine):

- **actor busy fraction**: engine time ÷ (actors × the span from a model's first batch to its last),
  summed over models (loading is not idle time); target ≥ 90%;
- **makespan** from the first model's start to the last batch, against its **lower bound**: the largest of
  total work ÷ all actors; for each model, its load time + its work ÷ its actors; the longest reasoning →
  answer chain (a model's load time + one item's reasoning + its answer); target ≤ 1.15×.

This is a benchmark, not a test: it prints figures.

    python -m bench.scheduler            # about two minutes
    python -m bench.scheduler --json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from evals.benchmarks import plan_prompts  # noqa: E402
from evals.datasets import DatasetSources  # noqa: E402
from evals.scoring import flatten_forms  # noqa: E402
from schemas.inference import EngineConfig, GenerateRequest, ScoreRequest  # noqa: E402
from schemas.spec import JobSpec  # noqa: E402
from service.runner.plan import REASON, SCORE, JobPlan, build_plan, reasoning_seed  # noqa: E402
from tests.support.fake_engine import fake_engine_factory, request_cost  # noqa: E402

FACTORY = "tests.support.fake_engine:fake_engine_factory"
T = TypeVar("T")


@dataclass(frozen=True)
class SimModel:
    name: str
    actors: int
    cost_s: float
    """Mean seconds per scoring request."""
    load_s: float


MODELS = (
    SimModel("big", actors=3, cost_s=0.04, load_s=4.0),
    SimModel("mid", actors=2, cost_s=0.02, load_s=2.5),
    SimModel("small", actors=1, cost_s=0.008, load_s=1.5),
)


def sweep_spec(args: argparse.Namespace, logs: Path) -> dict[str, Any]:
    models = []
    for model in MODELS:
        (logs / model.name).mkdir(parents=True, exist_ok=True)
        options = {
            "cost_s": model.cost_s,
            "tail_alpha": args.tail_alpha,
            "generate_cost": args.generate_cost,
            "load_s": model.load_s,
            "log_dir": str(logs / model.name),
            "cache": False,
        }
        models.append(
            {
                "name": "smollm2-135m-instruct",
                "alias": model.name,
                "num_actors": model.actors,
                "cpus_per_actor": 0.01,
                "engine_options": options,
            }
        )
    items = args.items
    return {
        "name": "bench-scheduler",
        "seed": args.seed,
        "models": models,
        "benchmarks": {
            "bbq": {"categories": ["Age", "Religion", "Nationality"], "limit": items},
            "winogender": {"limit": min(60, 2 * items)},
            "lawschool": {"limit": items},
        },
        "conditions": ["Q", "Q+IF", "Q+IF+CoT", "Q+MatchStats"],
        "cot": {"max_new_tokens": 16},
        "bootstrap": {"resamples": 0},
        "shard_size": args.shard_size,
    }


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def run_group_barrier(spec: JobSpec, plan: JobPlan, renderer: Any, model_path: str) -> dict[str, float]:
    """The runner's former dispatch (see the module docstring); returns when each model started loading."""
    from workers.pool import EnginePool

    starts = {}
    cot = spec.cot
    for position, model in enumerate(spec.models):
        starts[model.key] = time.time()
        config = EngineConfig(model_path=model_path, options=model.engine_options)
        with EnginePool(
            config, engine_factory=fake_engine_factory, num_actors=model.num_actors, num_cpus_per_actor=0.01
        ) as pool:
            reasoning: dict[tuple[str, str, str, int], str] = {}
            for group in _chunks(list(plan.shards(position, REASON)), model.num_actors):
                rows = [(shard, row) for shard in group for row in shard.rows]
                requests = [
                    GenerateRequest(
                        prompt=renderer.render(row.prompt.turns.reasoning_dialogue()),
                        max_new_tokens=cot.max_new_tokens,
                        stop=tuple(renderer.stop_strings),
                        seed=reasoning_seed(
                            spec.seed, model.key, shard.key.benchmark, shard.key.condition, row.prompt.key, row.sample
                        ),
                    )
                    for shard, row in rows
                ]
                for (shard, row), result in zip(rows, pool.generate(requests), strict=True):
                    reasoning[(shard.key.benchmark, shard.key.condition, row.prompt.key, row.sample)] = result.text
            for group in _chunks(list(plan.shards(position, SCORE)), model.num_actors):
                requests = []
                for shard in group:
                    for row in shard.rows:
                        text = reasoning.get((shard.key.benchmark, shard.key.condition, row.prompt.key, row.sample))
                        prompt = renderer.render(row.prompt.turns.answer_dialogue(text if row.prompt.is_cot else None))
                        requests.append(ScoreRequest(prompt, flatten_forms(row.prompt.candidates)))
                pool.score(requests)
    return starts


def run_streaming(spec: JobSpec, state: Path) -> dict[str, float]:
    """The real runner on a temporary store; returns when each model started loading."""
    from service.local import execute_local_run, open_local_run
    from service.settings import Settings

    settings = Settings(
        store_path=state / "jobs.sqlite3",
        results_uri=str(state / "results"),
        download=False,
        engine_factory=FACTORY,
    )
    run = open_local_run(spec, settings=settings)
    view = execute_local_run(run)
    if view.state.value != "completed":
        raise SystemExit(f"the streaming run ended {view.state.value}: {view.error}")
    events = run.store.events(run.job.id)
    return {
        m.key: min(e.created_at for e in events if (e.message or "").startswith(f"{m.key}: loading"))
        for m in spec.models
    }


def measure(logs: Path, starts: dict[str, float]) -> dict[str, Any]:
    """Busy fraction and makespan from the fake engine's batch logs, and each model's measured load time
    (from when it started loading to its first batch: process start and engine load)."""
    per_model = {}
    started = min(starts.values())
    last_end = started
    for model in MODELS:
        lines = [line.split() for path in (logs / model.name).glob("*.log") for line in path.read_text().splitlines()]
        batches = [(float(fields[0]), float(fields[1])) for fields in lines]
        busy = sum(end - start for start, end in batches)
        first, last = min(start for start, _ in batches), max(end for _, end in batches)
        last_end = max(last_end, last)
        per_model[model.name] = {
            "busy_s": busy,
            "load_s": first - starts[model.name],
            "requests": sum(int(fields[3]) for fields in lines),
            "batches": len(lines),
            "first_batch_s": first - started,
            "last_batch_end_s": last - started,
            "busy_fraction": busy / (model.actors * (last - first)),
        }
    total_busy = sum(m["busy_s"] for m in per_model.values())
    spans = sum(m.actors * (per_model[m.name]["last_batch_end_s"] - per_model[m.name]["first_batch_s"]) for m in MODELS)
    return {"makespan_s": last_end - started, "busy_fraction": total_busy / spans, "models": per_model}


def lower_bound(
    runs: list[dict[str, Any]], chains: dict[str, float], *, own: dict[str, Any] | None = None
) -> dict[str, float]:
    """The makespan no dispatch can beat: each model's load time is the shortest measured (it loaded alone;
    with ``own``, the load times of that run instead), its work the mean engine time the runs measured."""
    load = {m.name: min(run["models"][m.name]["load_s"] for run in ([own] if own else runs)) for m in MODELS}
    work = {m.name: sum(run["models"][m.name]["busy_s"] for run in runs) / len(runs) for m in MODELS}
    return {
        "work / all actors": sum(work.values()) / sum(m.actors for m in MODELS),
        "slowest model": max(load[m.name] + work[m.name] / m.actors for m in MODELS),
        "longest reasoning chain": max(load[m.name] + chains[m.name] for m in MODELS),
    }


def longest_chains(spec: JobSpec, plan: JobPlan, renderer: Any, args: argparse.Namespace) -> dict[str, float]:
    """Per model: the longest (reasoning + its answer) of one CoT row, alone (the answer's cost without its
    reasoning text, a lower estimate)."""
    chains = {}
    for model in MODELS:
        longest = 0.0
        for condition in plan.conditions:
            for row in condition.rows if condition.is_cot else []:
                reason = renderer.render(row.prompt.turns.reasoning_dialogue())
                answer = renderer.render(row.prompt.turns.answer_dialogue(""))
                cost = args.generate_cost * request_cost(reason, model.cost_s, args.tail_alpha)
                longest = max(longest, cost + request_cost(answer, model.cost_s, args.tail_alpha))
        chains[model.name] = longest
    return chains


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=24, help="items per benchmark (BBQ: per category)")
    parser.add_argument("--shard-size", type=int, default=32)
    parser.add_argument("--tail-alpha", type=float, default=1.7, help="Pareto shape of the latency (heavy tail)")
    parser.add_argument(
        "--generate-cost", type=float, default=6.0, help="a reasoning request's cost in scoring requests"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ray-cpus", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--keep", type=Path, default=None, help="keep the batch logs and the job's files here")
    args = parser.parse_args(argv)

    from workers.cluster import ensure_ray, shutdown_ray
    from workers.models import resolve_model
    from workers.rendering import PromptRenderer

    ensure_ray(num_cpus=args.ray_cpus)
    resolved = resolve_model("smollm2-135m-instruct")
    renderer = PromptRenderer.from_pretrained(resolved.path, "auto")
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-scheduler-") as folder:
        root = args.keep or Path(folder)
        for policy in ("group barrier", "streaming"):
            logs = root / policy.replace(" ", "-") / "logs"
            spec = JobSpec.model_validate(sweep_spec(args, logs))
            sources = DatasetSources(download=False)
            plan = build_plan(spec, {name: plan_prompts(spec, name, sources) for name in spec.benchmarks.selected})
            if policy == "group barrier":
                starts = run_group_barrier(spec, plan, renderer, resolved.path)
            else:
                starts = run_streaming(spec, logs.parent)
            results[policy] = measure(logs, starts)
            results[policy]["requests_per_model"] = plan.rows_per_model + sum(
                len(c.rows) for c in plan.conditions if c.is_cot
            )
            chains = longest_chains(spec, plan, renderer, args)
    shutdown_ray()
    bounds = lower_bound(list(results.values()), chains)
    for figures in results.values():
        figures["bounds"] = bounds
        figures["lower_bound_s"] = max(bounds.values())
        figures["ratio"] = figures["makespan_s"] / figures["lower_bound_s"]
        own = lower_bound(list(results.values()), chains, own=figures)
        figures["ratio_own_loads"] = figures["makespan_s"] / max(own.values())
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(
        f"simulated sweep: {', '.join(f'{m.name} ({m.actors} actors, {m.cost_s * 1000:.0f} ms/request, load {m.load_s:g} s)' for m in MODELS)}"
    )
    print(
        f"{results['streaming']['requests_per_model']} requests per model; latency Pareto(α={args.tail_alpha}), reasoning ×{args.generate_cost:g}"
    )
    print(
        f"{'policy':<15} {'makespan':>9} {'lower bound':>12} {'ratio':>6} {'(own loads)':>12} {'busy':>6}   per model: busy, load"
    )
    for policy, figures in results.items():
        models = ", ".join(
            f"{name} {m['busy_fraction']:.0%} {m['load_s']:.1f}s" for name, m in figures["models"].items()
        )
        print(
            f"{policy:<15} {figures['makespan_s']:>8.1f}s {figures['lower_bound_s']:>11.1f}s "
            f"{figures['ratio']:>5.2f}× {figures['ratio_own_loads']:>11.2f}× {figures['busy_fraction']:>5.0%}   {models}"
        )
    print("lower bound = max(" + ", ".join(f"{name} {value:.1f}s" for name, value in bounds.items()) + ")")


if __name__ == "__main__":
    main()
