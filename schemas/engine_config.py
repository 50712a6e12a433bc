"""The per-engine settings a user writes (a pydantic model), apart from the per-request data of
:mod:`schemas.inference` (which re-exports :class:`EngineConfig` lazily)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from schemas.inference import DType, EngineName, PromptFormat


class EngineConfig(BaseModel):
    """Everything needed to load one engine for one model (per-engine settings)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model_path: str = Field(description="Local folder of the resolved model (see workers.models).")
    engine: EngineName = Field("hf", description="`hf` (torch + transformers) or `vllm`.")
    dtype: DType = Field("float32", description="Weights and activations precision.")
    prompt_format: PromptFormat = Field(
        "auto",
        description="`chat` (the model's template), `human_assistant`, or `auto` (chat if the tokenizer has a template).",
    )
    device: str | None = Field(
        None, description="torch device for the hf engine; default: cuda if available, else cpu."
    )
    num_threads: int | None = Field(None, ge=1, description="CPU threads for the hf engine (torch.set_num_threads).")
    options: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "Engine-specific options. hf: `max_batch_tokens` (new tokens per forward pass), "
            "`max_batch_sequences` (sequences decoded together), `prefix_cache` (keep keys and values across "
            "calls; default true), `prefix_cache_mb` (its budget), `batch_invariant` (fixed-shape arithmetic; "
            "default true on CPU). "
            "vllm: `tensor_parallel_size`, `gpu_memory_utilization`, `max_model_len`, `enforce_eager`, ..."
        ),
    )
