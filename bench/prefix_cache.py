"""The quickstart workload through one engine, with the prefix cache off and on, and against other source trees.

Plans the prompts of a job spec (default ``examples/quickstart.yaml``: all three benchmarks, all conditions,
CoT included) and replays what the runner sends one model's engine: the **reason** phase (every CoT
prompt's reasoning, ``--batch`` requests per call, in plan order, seeded like the runner) and then the
**score** phase (every condition's prompts, CoT answers built from that engine's own reasoning), in the
runner's order. Each configuration runs in its own process, on its own source tree (``--tree``, e.g. today's
``main`` checked out elsewhere), with its own engine options, and reports:

- wall time of model load, reason phase, score phase, and the process's CPU time per phase (steadier than
  wall time when other processes share the machine);
- tokens requested and computed (prompt + continuation tokens not served from a cache) per phase, and per
  benchmark × condition for the score phase;
- the prefix cache's peak bytes against its budget, and the process's peak RSS;
- the largest |log-prob difference| of its scores against the first configuration's (0 when identical).

Then ratios against the first configuration. Example (today's main vs this tree, cache off and on):

    python -m bench.prefix_cache --config main=/work/baseline --config off=.:prefix_cache=false --config on=.

A configuration is ``NAME=TREE[:OPTION=VALUE,...]`` (engine options as YAML scalars, plus ``dtype``), e.g.
``fast=.:batch_invariant=false`` for what invariance costs, ``bf16=.:dtype=bfloat16`` for bfloat16's
cache-on vs cache-off difference. This is a benchmark,
not a test; absolute times depend on the machine (run it on a quiet one).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]


# -- the workload (planned in this tree) -------------------------------------------------------------
def plan_workload(spec_path: Path, batch: int) -> dict[str, Any]:
    """The engine calls of a job's one model, in the runner's order (plain data, for any tree's engine)."""
    sys.path.insert(0, str(REPO_ROOT))
    from evals.benchmarks import plan_prompts
    from evals.datasets import DatasetSources
    from evals.scoring import flatten_forms
    from moralscope.specfile import load_job_spec
    from service.runner.plan import build_plan, reasoning_seed

    spec = load_job_spec(str(spec_path))
    sources = DatasetSources(download=False)
    plan = build_plan(spec, {name: plan_prompts(spec, name, sources) for name in spec.benchmarks.selected})
    model = spec.models[0]
    reason, score = [], []
    for condition in plan.conditions:
        for row in condition.rows:
            key = f"{condition.benchmark}|{condition.condition}|{row.prompt.key}|{row.sample}"
            turns = row.prompt.turns
            if condition.is_cot:
                assert turns.cot is not None
                seed = reasoning_seed(
                    spec.seed, model.key, condition.benchmark, condition.condition, row.prompt.key, row.sample
                )
                reason.append({"key": key, "human": turns.human, "lead_in": turns.cot.lead_in, "seed": seed})
            score.append(
                {
                    "key": key if condition.is_cot else None,
                    "cell": f"{condition.benchmark} {condition.condition}",
                    "human": turns.human,
                    "lead_in": turns.cot.lead_in if turns.cot else None,
                    "follow_up": turns.cot.follow_up if turns.cot else None,
                    "answer_prefix": turns.answer_prefix,
                    "continuations": list(flatten_forms(row.prompt.candidates)),
                }
            )
    return {
        "model": model.name,
        "dtype": model.dtype,
        "prompt_format": model.prompt_format,
        "cot": spec.cot.model_dump(),
        "batch": batch,
        "reason": reason,
        "score": score,
    }


# -- one configuration (runs in a child process, on its own tree) -------------------------------------
def run_worker(workload: dict[str, Any], options: dict[str, Any], threads: int) -> dict[str, Any]:
    import resource

    import torch

    from schemas.dialogue import Dialogue, Turn
    from schemas.inference import EngineConfig, GenerateRequest, ScoreRequest
    from workers.engine import load_engine
    from workers.models import resolve_model

    started = time.perf_counter()
    resolved = resolve_model(workload["model"])
    options = dict(options)
    config = EngineConfig(
        model_path=resolved.path,
        engine="hf",
        dtype=options.pop("dtype", workload["dtype"]),
        prompt_format=workload["prompt_format"],
        device="cpu",
        num_threads=threads,
        options=options,
    )
    engine: Any = load_engine(config)
    load_s = time.perf_counter() - started
    cot, batch = workload["cot"], workload["batch"]
    reasoning: dict[str, str] = {}
    phases: dict[str, dict[str, float]] = {}

    def run_phase(name: str, calls: list[list[Any]], method: Any) -> list[Any]:
        results: list[Any] = []
        begin, cpu = time.perf_counter(), time.process_time()
        with torch.inference_mode():
            for call in calls:
                results += method(call)
        phases[name] = {
            "seconds": time.perf_counter() - begin,
            "cpu_seconds": time.process_time() - cpu,
            "requested": sum(_requested(r) for r in results),
            "computed": sum(_computed(r) for r in results),
        }
        return results

    requests = [
        GenerateRequest(
            engine.render(Dialogue.single(r["human"], r["lead_in"])),
            max_new_tokens=cot["max_new_tokens"],
            temperature=cot["temperature"],
            top_p=cot["top_p"],
            stop=tuple(engine.stop_strings),
            seed=r["seed"],
        )
        for r in workload["reason"]
    ]
    sampled = run_phase("reason", [requests[i : i + batch] for i in range(0, len(requests), batch)], engine.generate)
    reasoning = {r["key"]: s.text for r, s in zip(workload["reason"], sampled, strict=True)}

    def prompt(r: dict[str, Any]) -> str:
        if r["key"] is None:
            return str(engine.render(Dialogue.single(r["human"], r["answer_prefix"])))
        turns = (
            Turn("user", r["human"]),
            Turn("assistant", r["lead_in"] + reasoning[r["key"]]),
            Turn("user", r["follow_up"]),
            Turn("assistant", r["answer_prefix"]),
        )
        return str(engine.render(Dialogue(turns)))

    score_requests = [ScoreRequest(prompt(r), tuple(r["continuations"])) for r in workload["score"]]
    calls = [score_requests[i : i + batch] for i in range(0, len(score_requests), batch)]
    scores = run_phase("score", calls, engine.score)
    cells: dict[str, list[int]] = {}
    for request, result in zip(workload["score"], scores, strict=True):
        counts = cells.setdefault(request["cell"], [0, 0])
        counts[0] += _computed(result)
        counts[1] += _requested(result)
    stats = dict(getattr(engine, "stats", {}))
    engine.close()
    return {
        "load_s": load_s,
        "phases": phases,
        "cells": cells,
        "stats": stats,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "scores": [[c.logprob for c in r.continuations] for r in scores],
        "prompts": [hashlib.sha256(r.prompt.encode()).hexdigest() for r in score_requests],
        "reasoning": [s.text for s in sampled],
        "threads": torch.get_num_threads(),
    }


def _requested(result: Any) -> int:
    """Prompt plus scored or sampled tokens (older trees' results have no ``tokens_requested``)."""
    added = getattr(result, "completion_tokens", None)
    if added is None:
        added = sum(len(c.token_ids) for c in result.continuations)
    return int(result.prompt_tokens + added)


def _computed(result: Any) -> int:
    computed = getattr(result, "computed_tokens", None)
    return _requested(result) if computed is None else int(computed)


# -- the driver ----------------------------------------------------------------------------------------
def parse_config(text: str) -> tuple[str, Path, dict[str, Any]]:
    import yaml

    name, _, rest = text.partition("=")
    tree, _, opts = rest.partition(":")
    options = {}
    for item in filter(None, opts.split(",")):
        key, _, value = item.partition("=")
        options[key] = yaml.safe_load(value)
    if not name or not tree:
        raise SystemExit(f"--config must be NAME=TREE[:OPTION=VALUE,...], got {text!r}")
    return name, Path(tree).resolve(), options


def run_config(tree: Path, options: dict[str, Any], workload_file: Path, threads: int) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(tree), OMP_WAIT_POLICY=os.environ.get("OMP_WAIT_POLICY", "PASSIVE"))
    with tempfile.NamedTemporaryFile("r", suffix=".json") as out:
        command = [sys.executable, str(Path(__file__).resolve()), "--worker", str(workload_file), out.name]
        command += ["--options", json.dumps(options), "--threads", str(threads)]
        subprocess.run(command, env=env, check=True, cwd=tree)
        result: dict[str, Any] = json.loads(Path(out.name).read_text())
    return result


def difference(row: dict[str, Any], other: dict[str, Any]) -> tuple[float, int]:
    """The largest |log-prob difference| over the prompts two runs share (a CoT prompt differs where the
    sampled reasoning did), and how many they share."""
    values = [
        abs(a - b)
        for mine, theirs, p, q in zip(row["scores"], other["scores"], row["prompts"], other["prompts"], strict=True)
        if p == q
        for a, b in zip(mine, theirs, strict=True)
    ]
    shared = sum(p == q for p, q in zip(row["prompts"], other["prompts"], strict=True))
    return max(values, default=0.0), shared


def table(rows: list[dict[str, Any]]) -> str:
    columns = [
        "config", "load s", "reason s (CPU s)", "score s (CPU s)", "reason+score s", "reason tokens computed/requested",
        "score tokens computed/requested", "cache peak / budget MiB", "peak RSS MiB", "max abs diff vs first",
    ]  # fmt: skip
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        reason, score, stats = row["phases"]["reason"], row["phases"]["score"], row["stats"]
        cache = (
            f"{stats['cache_peak_bytes'] / 2**20:.0f} / {stats['cache_budget_bytes'] / 2**20:.0f}"
            if "cache_peak_bytes" in stats else "–"
        )  # fmt: skip
        lines.append(
            f"| {row['name']} | {row['load_s']:.1f} | {reason['seconds']:.1f} ({reason['cpu_seconds']:.0f}) | "
            f"{score['seconds']:.1f} ({score['cpu_seconds']:.0f}) | "
            f"{reason['seconds'] + score['seconds']:.1f} | {reason['computed']:,}/{reason['requested']:,} | "
            f"{score['computed']:,}/{score['requested']:,} | {cache} | {row['peak_rss_mib']:.0f} | "
            f"{row['max_abs_diff']:.2g} ({row['compared']} prompts) |"
        )
    first = rows[0]
    for row in rows[1:]:
        ratio = {p: first["phases"][p]["seconds"] / row["phases"][p]["seconds"] for p in ("reason", "score")}
        cpu = {p: first["phases"][p]["cpu_seconds"] / row["phases"][p]["cpu_seconds"] for p in ("reason", "score")}
        both = sum(first["phases"][p]["seconds"] for p in ratio) / sum(row["phases"][p]["seconds"] for p in ratio)
        lines.append(
            f"\n{row['name']} vs {first['name']}: score phase {ratio['score']:.2f}x faster (CPU time "
            f"{cpu['score']:.2f}x), reason phase {ratio['reason']:.2f}x (CPU time {cpu['reason']:.2f}x), reason+score "
            f"{both:.2f}x; same reasoning text: {row['same_reasoning']}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", type=Path, default=REPO_ROOT / "examples" / "quickstart.yaml")
    parser.add_argument("--config", action="append", help="NAME=TREE[:OPTION=VALUE,...] (repeatable)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of each engine")
    parser.add_argument("--batch", type=int, default=32, help="requests per engine call (the pool's hf batch)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--worker", nargs=2, metavar=("WORKLOAD", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--options", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        sys.path.insert(0, os.getcwd())
        result = run_worker(json.loads(Path(args.worker[0]).read_text()), json.loads(args.options), args.threads)
        Path(args.worker[1]).write_text(json.dumps(result))
        return
    configs = [parse_config(c) for c in args.config or ["off=.:prefix_cache=false", "on=."]]
    workload = plan_workload(args.spec, args.batch)
    rows = []
    with tempfile.NamedTemporaryFile("w", suffix=".json") as handle:
        json.dump(workload, handle)
        handle.flush()
        for name, tree, options in configs:
            print(f"running {name} ({tree}, options {options}) ...", file=sys.stderr)
            result = run_config(tree, options, Path(handle.name), args.threads)
            rows.append({"name": name, "tree": str(tree), "options": options, **result})
    first = rows[0]
    for row in rows:
        row["max_abs_diff"], row["compared"] = difference(row, first)
        row["same_reasoning"] = row["reasoning"] == first["reasoning"]
    pairs = {
        f"{a['name']} vs {b['name']}": {
            "max_abs_diff": difference(a, b)[0],
            "same_reasoning": a["reasoning"] == b["reasoning"],
        }
        for i, a in enumerate(rows)
        for b in rows[i + 1 :]
    }
    for row in rows:
        for bulky in ("scores", "prompts", "reasoning"):
            row.pop(bulky)
    summary = {"spec": str(args.spec), "prompts": {"reason": len(workload["reason"]), "score": len(workload["score"])}}
    summary["pairs"] = pairs
    summary["load_average"] = os.getloadavg()[0]
    if args.json:
        print(json.dumps({**summary, "configs": rows}, indent=2))
    else:
        print(f"{args.spec.name}: {summary['prompts']['reason']} reasoning prompts, {summary['prompts']['score']} scored prompts, "
              f"load average {summary['load_average']:.1f} at the end")  # fmt: skip
        print(table(rows))
        for row in rows:
            cells = ", ".join(f"{cell} {c:,}/{r:,}" for cell, (c, r) in row["cells"].items())
            print(f"{row['name']}: score tokens computed/requested by cell: {cells}")
        for name, pair in pairs.items():
            print(
                f"{name}: max abs score difference {pair['max_abs_diff']:.2g}, same reasoning {pair['same_reasoning']}"
            )


if __name__ == "__main__":
    main()
