"""The hf engine against lm-evaluation-harness's HF backend on real BBQ items (Q, Human/Assistant format).

Both score the same token ids (the engine's joint tokenisation, handed to lm-eval's
``HFLM._loglikelihood_tokens``) of ``--items`` BBQ questions (the study's plain-text format, the ``Q``
condition, candidates `` (a)``, `` (b)``, `` (c)``), on the embedded SmolLM2-135M-Instruct in float32
with the same number of threads. lm-eval runs at each of ``--batch-sizes`` on the first ``--sweep-items``
items, then on all items at its best batch size; the engine runs once with its prefix cache off and once
on (each on a cold engine, all requests in one call). Prints items/s, the engine's speed-up over lm-eval at
its best, the largest |log-probability difference| and whether every item's argmax agrees.

lm-eval lives in its own virtualenv so its dependencies leave the project's alone:

    python3.11 -m venv /work/lmeval-venv
    /work/lmeval-venv/bin/pip install torch==2.13.0 transformers==5.19.0 "lm-eval[hf]==0.4.13"
    # (torch's CPU wheel: add --index-url https://download.pytorch.org/whl/cpu where PyPI serves CUDA builds)
    python -m bench.lmeval --lmeval-python /work/lmeval-venv/bin/python --items 600 --threads 2

This is a benchmark, not a test: run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
CANDIDATES = (" (a)", " (b)", " (c)")


def lmeval_worker(job: dict[str, Any]) -> dict[str, Any]:
    """Runs in lm-eval's virtualenv: only lm_eval, torch and transformers are imported."""
    import torch
    from lm_eval.models.huggingface import HFLM

    torch.set_num_threads(job["threads"])
    lm = HFLM(pretrained=job["model_path"], device="cpu", dtype="float32", batch_size=1)
    requests = [(("", ""), context, continuation) for context, continuation in job["pairs"]]
    per_item = len(CANDIDATES)
    lm._loglikelihood_tokens(requests[: 2 * per_item], disable_tqdm=True)  # warm-up
    sweep = {}
    for size in job["batch_sizes"]:
        lm.batch_size_per_gpu = size
        started = time.perf_counter()
        lm._loglikelihood_tokens(requests[: job["sweep_items"] * per_item], disable_tqdm=True)
        sweep[size] = job["sweep_items"] / (time.perf_counter() - started)
    best = max(sweep, key=lambda s: sweep[s])
    lm.batch_size_per_gpu = best
    started = time.perf_counter()
    results = lm._loglikelihood_tokens(requests, disable_tqdm=True)
    seconds = time.perf_counter() - started
    return {
        "sweep_items_per_s": sweep,
        "best_batch_size": best,
        "seconds": seconds,
        "logprobs": [float(value) for value, _ in results],
        "versions": {"lm_eval": __import__("lm_eval").__version__, "torch": torch.__version__},
    }


def bbq_prompts(items: int) -> list[str]:
    """``items`` BBQ questions spread over the local categories, in the study's Human/Assistant format."""
    sys.path.insert(0, str(REPO_ROOT))
    from evals.bbq import question_text, read_category
    from schemas.dialogue import Dialogue, render_human_assistant

    folder = Path(os.environ.get("MORALSCOPE_DATA_DIR", REPO_ROOT.parent / "shared" / "datasets")) / "bbq" / "data"
    rows = [item for path in sorted(folder.glob("*.jsonl")) for item in read_category(path, path.stem, limit=items)]
    if len(rows) < items:
        raise SystemExit(f"only {len(rows)} BBQ rows under {folder}; set MORALSCOPE_DATA_DIR")
    chosen = rows[:: len(rows) // items][:items]
    return [render_human_assistant(Dialogue.single(question_text(item), "The answer is")) for item in chosen]


def run_engine(engine: Any, prompts: list[str]) -> tuple[float, list[float], dict[str, int]]:
    from schemas.inference import ScoreRequest

    requests = [ScoreRequest(p, CANDIDATES) for p in prompts]
    started = time.perf_counter()
    results = engine.score(requests)
    seconds = time.perf_counter() - started
    return seconds, [c.logprob for r in results for c in r.continuations], dict(engine.stats)


def argmaxes(values: list[float]) -> list[int]:
    per_item = len(CANDIDATES)
    return [max(range(per_item), key=lambda k: values[i + k]) for i in range(0, len(values), per_item)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=600)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--lmeval-python", default="/work/lmeval-venv/bin/python", help="python of lm-eval's venv")
    parser.add_argument("--batch-sizes", default="8,16,32,64", help="lm-eval batch sizes to try")
    parser.add_argument("--sweep-items", type=int, default=60, help="items timed per lm-eval batch size")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--lmeval-worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.lmeval_worker:
        job = json.loads(Path(args.lmeval_worker[0]).read_text())
        Path(args.lmeval_worker[1]).write_text(json.dumps(lmeval_worker(job)))
        return

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    sys.path.insert(0, str(REPO_ROOT))
    import torch

    from schemas.inference import EngineConfig, ScoreRequest
    from workers.hf import HFEngine
    from workers.models import resolve_model
    from workers.rendering import PromptRenderer

    torch.set_num_threads(args.threads)
    resolved = resolve_model("smollm2-135m-instruct")
    renderer = PromptRenderer.from_pretrained(resolved.path, "human_assistant")
    prompts = bbq_prompts(args.items)

    def config(**options: Any) -> EngineConfig:
        return EngineConfig(
            model_path=resolved.path, device="cpu", num_threads=args.threads, prompt_format="human_assistant",
            options=options,
        )  # fmt: skip

    first = HFEngine(config(prefix_cache=False), renderer)  # loads the weights and verifies the tile sizes
    pairs = [first.encode_pair(p, c) for p in prompts for c in CANDIDATES]
    job = {
        "model_path": resolved.path,
        "threads": args.threads,
        "pairs": pairs,
        "batch_sizes": [int(s) for s in args.batch_sizes.split(",")],
        "sweep_items": min(args.sweep_items, args.items),
    }
    with tempfile.TemporaryDirectory() as folder:
        job_file, out_file = Path(folder) / "job.json", Path(folder) / "out.json"
        job_file.write_text(json.dumps(job))
        env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
        env.pop("PYTHONPATH", None)
        command = [args.lmeval_python, str(Path(__file__).resolve()), "--lmeval-worker", str(job_file), str(out_file)]
        subprocess.run(command, env=env, check=True, cwd=folder)
        lmeval = json.loads(out_file.read_text())

    rows = {}
    for name, options in (("engine, cache off", {"prefix_cache": False}), ("engine, cache on", {})):
        candidate = HFEngine(config(**options), renderer, model=first.model)
        candidate.score([ScoreRequest("Hello", CANDIDATES)])  # warm-up (shares no prefix with the items)
        seconds, values, stats = run_engine(candidate, prompts)
        rows[name] = {"seconds": seconds, "items_per_s": args.items / seconds, "values": values, "stats": stats}
    reference = lmeval["logprobs"]
    lmeval_rate = args.items / lmeval["seconds"]
    summary: dict[str, Any] = {
        "items": args.items,
        "threads": args.threads,
        "lm_eval": {k: lmeval[k] for k in ("sweep_items_per_s", "best_batch_size", "seconds", "versions")},
        "lm_eval_items_per_s": lmeval_rate,
        "load_average": os.getloadavg()[0],
    }
    for name, row in rows.items():
        values = row.pop("values")
        row["speedup_vs_lm_eval"] = row["items_per_s"] / lmeval_rate
        row["max_abs_diff_vs_lm_eval"] = max(abs(a - b) for a, b in zip(values, reference, strict=True))
        row["same_argmax"] = argmaxes(values) == argmaxes(reference)
        summary[name] = row
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print(
        f"{args.items} BBQ items (Q, Human/Assistant, 3 candidates), {args.threads} threads, load {summary['load_average']:.1f}"
    )
    sweep = ", ".join(f"{size}: {rate:.2f}" for size, rate in lmeval["sweep_items_per_s"].items())
    print(
        f"lm-eval {lmeval['versions']['lm_eval']} HF backend, items/s by batch size on {job['sweep_items']} items: {sweep}"
    )
    print("| run | items/s | speed-up vs lm-eval | max abs diff vs lm-eval | same argmax |")
    print("|---|---|---|---|---|")
    print(f"| lm-eval, batch size {lmeval['best_batch_size']} | {lmeval_rate:.2f} | 1.00x | – | – |")
    for name, row in rows.items():
        print(
            f"| {name} | {row['items_per_s']:.2f} | {row['speedup_vs_lm_eval']:.2f}x | "
            f"{row['max_abs_diff_vs_lm_eval']:.1e} | {row['same_argmax']} |"
        )


if __name__ == "__main__":
    main()
