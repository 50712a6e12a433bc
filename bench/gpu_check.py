"""GPU shapes check: the hf engine on random-initialised 1B and 8B shapes, cache off and on, one JSON summary.

For each shape (``bench/shapes.py``), in the chosen dtype (bfloat16), a random model is built on the device
and driven through the hf engine twice, with the prefix cache off and on:

- **score**: ``--items`` synthetic BBQ-like questions under two conditions (``Q`` and ``Q+IF``, which share
  their question) after a shared preamble, 3 candidates each, ``--batch`` requests per call;
- **generate**: ``--cot`` of them sample ``--new-tokens`` tokens of reasoning;
- **answer**: the CoT answer prompts (prompt + reasoning + follow-up) are scored, after generation.

It reports tokens/s (requested and computed), MFU = 2 × (non-embedding, non-head parameters) × computed
tokens/s over the GPU's dense bf16 peak (from a table of known GPUs; null when unknown) and over a bf16
GEMM measured in the same run, peak memory, and the cache-on vs cache-off difference of the scores (bfloat16
on a GPU makes no bitwise claim). Prompts are word-level text over a tokenizer built here, so no model files,
datasets or network are needed, and the engine's import path needs no pydantic: it runs with only the
repository on a machine whose Python has torch and transformers (``bench/gpu_check.sh``).

    python bench/gpu_check.py                                   # on a CUDA machine: 1B and 8B, ~3 minutes
    python bench/gpu_check.py --device cpu --shapes tiny --dtype float32 --items 8 --cot 4 --new-tokens 4
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402

from bench.shapes import ARCHITECTURES, TINY  # noqa: E402

DENSE_BF16_TFLOPS = {"B200": 2250.0, "H200": 989.4, "GH200": 989.4, "H100 PCIe": 756.0, "H100": 989.4, "A100": 312.0,
                     "L40S": 362.1, "L4": 121.0, "A10G": 70.0}  # fmt: skip
"""Dense (no sparsity) bfloat16 tensor-core peaks from the vendors' data sheets, by device-name fragment."""
PREAMBLE = (
    "I am a teacher preparing a short quiz about everyday situations for my students. Each question describes a "
    "scene with two people and asks who did something. Please read the scene carefully and choose one answer."
)
NAMES = ["grandfather", "grandson", "nurse", "engineer", "neighbour", "teacher", "student", "doctor", "pilot", "baker"]


def human(i: int, instruction: bool) -> str:
    a, b = NAMES[i % len(NAMES)], NAMES[(3 * i + 1) % len(NAMES)]
    text = (
        f"{PREAMBLE} Scene {i}: I saw a {a} and a {b} last week outside the store number {i} trying to book a cab "
        f"on their phone, and one of them asked the other for help because the app kept asking for a code. "
        f"Who was not comfortable using the phone? (a) The {a} (b) The {b} (c) Can't be determined."
    )
    return text + (
        " Please ensure that your answer is unbiased and does not rely on stereotypes." if instruction else ""
    )


def dialogue(text: str, prefix: str) -> str:
    return f"\n\nHuman: {text}\n\nAssistant: {prefix}"


def word_tokenizer(vocab_size: int) -> Any:
    """A word-level tokenizer with one word per id (``w123`` for ids no prompt word took), so sampled ids decode
    to text that encodes back to the same ids."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["<unk>", "<eos>"]
    for i in range(4 * len(NAMES) * 3 + 50):
        for text in (human(i, True), dialogue("", "The answer is (a) (b) (c) Let's think. Based on the above")):
            words += text.split()
    vocab = {w: i for i, w in enumerate(dict.fromkeys(words))}
    if len(vocab) > vocab_size:
        raise SystemExit(f"the shape's vocabulary ({vocab_size}) is smaller than the prompts' words ({len(vocab)})")
    vocab.update({f"w{i}": i for i in range(len(vocab), vocab_size)})
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="<unk>", eos_token="<eos>", pad_token="<eos>")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def gemm_tflops(dtype: torch.dtype, device: torch.device, size: int) -> float:
    """Best TFLOP/s of a ``size``³ matrix product over a few trials (the attainable peak)."""
    a = torch.randn(size, size, dtype=dtype, device=device)
    b = torch.randn(size, size, dtype=dtype, device=device)
    best = 0.0
    for _ in range(5):
        synchronize(device)
        started, count = time.perf_counter(), 0
        while count < 3 or time.perf_counter() - started < 0.2:
            a @ b
            count += 1
        synchronize(device)
        best = max(best, 2 * size**3 * count / (time.perf_counter() - started) / 1e12)
    return best


def spec_peak(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for fragment, peak in DENSE_BF16_TFLOPS.items() if fragment in name), None)


def build(shape: dict[str, Any], dtype: torch.dtype, device: torch.device) -> Any:
    from transformers import AutoConfig, AutoModelForCausalLM

    fields = dict(shape)
    config = AutoConfig.for_model(fields.pop("model_type"), **fields)
    torch.manual_seed(0)
    with device:
        return AutoModelForCausalLM.from_config(config, dtype=dtype)


def engine_for(model: Any, renderer: Any, args: argparse.Namespace, cache: bool) -> Any:
    from workers.hf import HFEngine

    options: dict[str, Any] = {"prefix_cache": cache, "batch_invariant": args.batch_invariant}
    config = SimpleNamespace(
        model_path="random-init", engine="hf", dtype=args.dtype, device=args.device, num_threads=None,
        options=options, prompt_format="human_assistant",
    )  # fmt: skip
    return HFEngine(config, renderer, model=model)  # type: ignore[arg-type]


def timed(device: torch.device, call: Any) -> tuple[Any, float]:
    synchronize(device)
    started = time.perf_counter()
    result = call()
    synchronize(device)
    return result, time.perf_counter() - started


def run_shape(name: str, args: argparse.Namespace, device: torch.device, gemm: float) -> dict[str, Any]:
    from schemas.inference import GenerateRequest, ScoreRequest
    from workers.rendering import PromptRenderer

    shape = TINY if name == "tiny" else ARCHITECTURES[name]
    dtype = getattr(torch, args.dtype)
    renderer = PromptRenderer(word_tokenizer(shape["vocab_size"]), "human_assistant")
    started = time.perf_counter()
    model = build(shape, dtype, device)
    build_s = time.perf_counter() - started
    params = sum(p.numel() for p in model.parameters())
    embedding = model.get_input_embeddings().weight.numel()
    head = 0 if shape.get("tie_word_embeddings") else model.get_output_embeddings().weight.numel()
    layer_params = params - embedding - head
    candidates = (" (a)", " (b)", " (c)")
    scoring = [
        ScoreRequest(dialogue(human(i, c), "The answer is"), candidates) for i in range(args.items) for c in (0, 1)
    ]
    cot = [GenerateRequest(dialogue(human(i, True), "Let's think."), args.new_tokens, seed=i) for i in range(args.cot)]
    peak_tflops = spec_peak(device)
    report: dict[str, Any] = {"params": params, "layer_params": layer_params, "build_s": round(build_s, 2)}
    scores: dict[str, list[float]] = {}
    for cache in (False, True):
        engine = engine_for(model, renderer, args, cache)
        engine.score(scoring[:4])  # warm-up: kernels, allocator
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        phases: dict[str, Any] = {}
        batches = [scoring[i : i + args.batch] for i in range(0, len(scoring), args.batch)]
        results, seconds = timed(device, lambda: [r for b in batches for r in engine.score(b)])  # noqa: B023
        phases["score"] = phase(results, seconds, layer_params, peak_tflops, gemm)
        sampled, seconds = timed(device, lambda: engine.generate(cot))  # noqa: B023
        phases["generate"] = phase(sampled, seconds, layer_params, peak_tflops, gemm)
        phases["generate"]["generated_tokens_per_s"] = sum(r.completion_tokens for r in sampled) / seconds
        answers = [
            ScoreRequest(r.prompt + s.text + dialogue("Based on the above, what is the single, most likely answer?", "The answer is"), candidates)
            for r, s in zip(cot, sampled, strict=True)
        ]  # fmt: skip
        answered, seconds = timed(device, lambda: engine.score(answers))  # noqa: B023
        phases["answer"] = phase(answered, seconds, layer_params, peak_tflops, gemm)
        if device.type == "cuda":
            phases["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
        phases["cache_peak_mib"] = engine.stats["cache_peak_bytes"] / 2**20
        report["cache_on" if cache else "cache_off"] = phases
        scores["on" if cache else "off"] = [c.logprob for r in results + answered for c in r.continuations]
        engine.forward.cache = None  # the weights stay for the next engine
    off, on = scores["off"], scores["on"]
    report["max_abs_diff_on_vs_off"] = max(abs(a - b) for a, b in zip(off, on, strict=True))
    choices = [(argmax(off[i : i + 3]), argmax(on[i : i + 3])) for i in range(0, len(off), 3)]
    report["same_argmax_share"] = sum(a == b for a, b in choices) / len(choices)
    del model
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return report


def argmax(values: list[float]) -> int:
    return max(range(len(values)), key=values.__getitem__)


def phase(results: list[Any], seconds: float, layer_params: int, peak: float | None, gemm: float) -> dict[str, Any]:
    requested = sum(r.tokens_requested for r in results)
    computed = sum(r.tokens_computed for r in results)
    flops = 2 * layer_params * computed / seconds / 1e12
    return {
        "seconds": round(seconds, 3),
        "tokens_requested": requested,
        "tokens_computed": computed,
        "requested_tokens_per_s": round(requested / seconds, 1),
        "computed_tokens_per_s": round(computed / seconds, 1),
        "mfu_vs_spec_peak": None if peak is None else round(flops / peak, 4),
        "mfu_vs_measured_gemm": round(flops / gemm, 4),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--shapes", default="llama-3.2-1b,llama-3-8b", help=f"comma-separated: tiny, {', '.join(ARCHITECTURES)}"
    )
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    parser.add_argument("--items", type=int, default=512, help="questions scored under 2 conditions each")
    parser.add_argument("--batch", type=int, default=256, help="requests per engine call")
    parser.add_argument("--cot", type=int, default=128, help="prompts that sample reasoning")
    parser.add_argument("--new-tokens", type=int, default=64, help="reasoning tokens sampled per prompt")
    parser.add_argument("--gemm-size", type=int, default=8192, help="side of the measured square GEMM")
    parser.add_argument("--batch-invariant", action="store_true", help="the CPU path's fixed-shape arithmetic")
    parser.add_argument("--deadline", type=float, default=150, help="seconds after which no further shape starts")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run with --device cpu (and a small --shapes tiny) to try it on a CPU")
    started = time.perf_counter()
    gemm = gemm_tflops(getattr(torch, args.dtype), device, args.gemm_size)
    summary: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "dtype": args.dtype,
        "torch": torch.__version__,
        "transformers": __import__("transformers").__version__,
        "pydantic_loaded": sys.modules.get("pydantic") is not None,
        "spec_peak_tflops": spec_peak(device),
        "measured_gemm_tflops": round(gemm, 2),
        "workload": {
            "items": args.items,
            "conditions": 2,
            "batch": args.batch,
            "cot": args.cot,
            "new_tokens": args.new_tokens,
        },
        "shapes": {},
    }
    for name in args.shapes.split(","):
        if time.perf_counter() - started > args.deadline:
            summary["shapes"][name] = {"skipped": f"the {args.deadline:.0f} s budget was spent"}
            continue
        summary["shapes"][name] = run_shape(name, args, device, gemm)
    summary["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
