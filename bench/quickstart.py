"""``moralscope run examples/quickstart.yaml`` end to end, side by side on several source trees and settings.

Each configuration runs the real command (local Ray, the job store, Parquet results) in a fresh store and
output folder, with ``PYTHONPATH`` pointing at its source tree, e.g. today's ``main`` checked out elsewhere
against this branch with its prefix cache off and on. Reported per configuration: the command's wall time;
the job's phases, read from its events (validating, model load, reasoning, scoring, finalizing); tokens
requested and computed (from ``samples.parquet``, where the tree records ``computed_tokens``); and the
largest |log-probability difference| against the first configuration over the rows whose prompt is the
same. Then the speed-ups against the first configuration.

    python -m bench.quickstart --config main=/work/baseline --config off=.:prefix_cache=false --config on=.

A configuration is ``NAME=TREE[:OPTION=VALUE,...]``; the options are added to every model's
``engine_options``. It takes minutes per configuration; run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.prefix_cache import parse_config  # noqa: E402

PHASES = [
    ("validating", ("validating",)),
    ("model load", ("loading the model",)),
    ("reasoning", ("generating reasoning",)),
    ("scoring", ("scoring answers", ": scoring")),
    ("finalizing", ("finalizing",)),
    ("end", ("completed",)),
]
"""Phase names and the event message fragments that start each (the runner's progress messages: before the
streaming runner, "generating reasoning" then "scoring answers"; since, "generating reasoning and scoring" (the
scoring of finished reasoning and of the other conditions runs alongside) then "scoring" once the reasoning is
done)."""


def phases_from_events(store: Path) -> dict[str, float]:
    """Seconds per phase, from the first event whose message starts each phase to the next phase's."""
    with sqlite3.connect(store) as db:
        events = db.execute("SELECT created_at, message FROM events ORDER BY id").fetchall()
    starts: dict[str, float] = {}
    for name, fragments in PHASES:
        at = next((t for t, message in events if message and any(f in message for f in fragments)), None)
        if at is not None:
            starts[name] = at
    names = [name for name, _ in PHASES if name in starts]
    return {a: starts[b] - starts[a] for a, b in pairwise(names)}


def samples(folder: Path) -> dict[str, Any]:
    import pyarrow.parquet as pq

    found = list(folder.rglob("samples.parquet"))
    if not found:
        return {}
    table = pq.read_table(found[0]).to_pylist()
    requested = sum((r.get("prompt_tokens") or 0) + (r.get("continuation_tokens") or 0) for r in table)
    computed = sum(r["computed_tokens"] for r in table if r.get("computed_tokens") is not None)
    return {
        "rows": len(table),
        "score_tokens_requested": requested,
        "score_tokens_computed": computed if any(r.get("computed_tokens") is not None for r in table) else None,
        "logprobs": {r["prompt_sha256"] + r["model"]: r["candidate_logprobs"] for r in table},
    }


def run_config(tree: Path, options: dict[str, Any], spec_path: Path) -> dict[str, Any]:
    spec = yaml.safe_load(spec_path.read_text())
    for model in spec["models"]:
        model.setdefault("engine_options", {}).update(options)
    with tempfile.TemporaryDirectory(prefix="moralscope-bench-") as folder:
        work = Path(folder)
        (work / "spec.yaml").write_text(yaml.safe_dump(spec))
        env = dict(os.environ, PYTHONPATH=str(tree), MORALSCOPE_STORE_PATH=str(work / "store.db"))
        env.update({"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", "TOKENIZERS_PARALLELISM": "false"})
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        command = [
            sys.executable,
            "-m",
            "moralscope.cli",
            "run",
            str(work / "spec.yaml"),
            "--out",
            str(work / "out"),
            "--json",
        ]
        started = time.perf_counter()
        subprocess.run(command, env=env, cwd=tree, check=True, stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - started
        return {"seconds": seconds, "phases": phases_from_events(work / "store.db"), **samples(work / "out")}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", type=Path, default=REPO_ROOT / "examples" / "quickstart.yaml")
    parser.add_argument("--config", action="append", help="NAME=TREE[:OPTION=VALUE,...] (repeatable)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    rows = []
    for name, tree, options in (parse_config(c) for c in args.config or ["off=.:prefix_cache=false", "on=."]):
        print(f"running {name} ({tree}, options {options}) ...", file=sys.stderr)
        rows.append({"name": name, "tree": str(tree), "options": options, **run_config(tree, options, args.spec)})
    first = rows[0].get("logprobs", {})
    for row in rows:
        mine = row.pop("logprobs", {})
        shared = [key for key in mine if key in first and mine[key] and first[key]]
        row["compared_rows"] = len(shared)
        row["max_abs_diff"] = max(
            (abs(a - b) for k in shared for a, b in zip(mine[k], first[k], strict=True)), default=0.0
        )
    if args.json:
        print(json.dumps({"spec": str(args.spec), "load_average": os.getloadavg()[0], "configs": rows}, indent=2))
        return
    names = [name for name, _ in PHASES[:-1]]
    print(f"{args.spec.name}, load average {os.getloadavg()[0]:.1f} at the end")
    print(
        "| config | total s | "
        + " | ".join(f"{n} s" for n in names)
        + " | score tokens computed/requested | max abs diff vs first |"
    )
    print("|---|---|" + "---|" * len(names) + "---|---|")
    for row in rows:
        phases = " | ".join(f"{row['phases'][n]:.0f}" if n in row["phases"] else "–" for n in names)
        computed = row.get("score_tokens_computed")
        tokens = f"{computed if computed is not None else '–'}/{row.get('score_tokens_requested', '–')}"
        print(
            f"| {row['name']} | {row['seconds']:.0f} | {phases} | {tokens} | {row['max_abs_diff']:.2g} ({row['compared_rows']} rows) |"
        )
    for row in rows[1:]:
        ratio = rows[0]["seconds"] / row["seconds"]
        score = rows[0]["phases"].get("scoring", 0) / row["phases"].get("scoring", float("inf"))
        print(f"{row['name']} vs {rows[0]['name']}: the whole run {ratio:.2f}x faster, the scoring phase {score:.2f}x")


if __name__ == "__main__":
    main()
