#!/usr/bin/env bash
# The GPU shapes check: the hf engine on random-initialised 1B and 8B shapes in bfloat16 (scoring and
# generation, prefix cache off and on), printed as one JSON summary: tokens/s, MFU against the GPU's dense
# bf16 peak and against a bf16 GEMM measured in the same run, peak memory, cache-on vs cache-off difference.
# See bench/gpu_check.py for what is measured.
#
# Needs only this repository and a Python with torch (CUDA) and transformers (checked with torch 2.11 /
# transformers 5.17 and with the project's pins); the engine's import path needs no pydantic, no model
# files, no datasets and no network. Finishes in under 4 minutes on one H100-class GPU.
#
#   bench/gpu_check.sh                      # llama-3.2-1b and llama-3-8b shapes
#   bench/gpu_check.sh --shapes llama-3.2-1b --items 256
#   PYTHON=/path/to/python bench/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import torch, transformers' 2>/dev/null || { echo "bench/gpu_check.sh: $PYTHON cannot import torch and transformers (set PYTHON=...)" >&2; exit 1; }
"$PYTHON" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else "bench/gpu_check.sh: no CUDA device visible to torch")'
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export TOKENIZERS_PARALLELISM=false
exec timeout 235 "$PYTHON" bench/gpu_check.py "$@"
