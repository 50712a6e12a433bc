"""Shared fixtures of the workers tests: the embedded model, prepared once, and one hf engine on it.

The model is prepared in the default cache (``$MORALSCOPE_CACHE_DIR`` or ``~/.cache/moralscope``), so
only the first session on a machine pays for the GGUF conversion; no model is loaded at import time.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from schemas.inference import EngineConfig, ResolvedModel


@pytest.fixture(scope="session")
def embedded_model() -> ResolvedModel:
    """The built-in ``smollm2-135m-instruct``, converted to safetensors in the default cache."""
    from workers.models import DEFAULT_MODEL, resolve_model

    return resolve_model(DEFAULT_MODEL)


@pytest.fixture(scope="session")
def hf_engine(embedded_model: ResolvedModel) -> Iterator[object]:
    """An hf engine (float32, CPU, default batching) on the embedded model, shared by the session."""
    from workers.engine import load_engine

    engine = load_engine(EngineConfig(model_path=embedded_model.path, engine="hf", device="cpu"))
    yield engine
    engine.close()
