"""bench/gpu_check.sh's Python part on a CPU with a tiny random shape, in a process where pydantic cannot be
imported (the GPU machines it is meant for have none); and the shell script's refusal without CUDA."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NO_PYDANTIC = """
import runpy, sys
sys.modules["pydantic"] = None  # `import pydantic` now raises ImportError
sys.argv = ["bench/gpu_check.py", *sys.argv[1:]]
runpy.run_path("bench/gpu_check.py", run_name="__main__")
"""


def test_gpu_check_runs_a_tiny_shape_on_cpu_without_pydantic() -> None:
    arguments = ["--device", "cpu", "--shapes", "tiny", "--dtype", "bfloat16", "--items", "6", "--batch", "5"]
    arguments += ["--cot", "3", "--new-tokens", "3", "--gemm-size", "128"]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    completed = subprocess.run(
        [sys.executable, "-c", NO_PYDANTIC, *arguments], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    summary = json.loads(completed.stdout)
    assert summary["pydantic_loaded"] is False
    assert summary["measured_gemm_tflops"] > 0
    tiny = summary["shapes"]["tiny"]
    off, on = tiny["cache_off"], tiny["cache_on"]
    for phase in ("score", "generate", "answer"):
        assert off[phase]["tokens_computed"] == off[phase]["tokens_requested"] > 0
        assert on[phase]["tokens_requested"] == off[phase]["tokens_requested"]
        assert on[phase]["mfu_vs_measured_gemm"] > 0
    # Q and Q+IF share their question; the answers reuse the reasoning's keys and values
    assert on["score"]["tokens_computed"] < 0.5 * off["score"]["tokens_computed"]
    assert on["answer"]["tokens_computed"] < 0.5 * off["answer"]["tokens_computed"]
    assert on["cache_peak_mib"] > 0
    assert 0 <= tiny["max_abs_diff_on_vs_off"] < 0.1  # bfloat16: no bitwise claim, only rounding
    assert tiny["same_argmax_share"] >= 0.8


def test_gpu_check_script_refuses_without_cuda() -> None:
    import torch

    if torch.cuda.is_available():  # nothing to refuse here (a GPU machine runs the real check)
        return
    env = dict(os.environ, PYTHON=sys.executable)
    script = str(REPO / "bench" / "gpu_check.sh")
    completed = subprocess.run(["bash", script], env=env, capture_output=True, text=True, timeout=120)
    assert completed.returncode != 0
    assert "no CUDA device" in completed.stderr
