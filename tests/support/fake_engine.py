"""An engine factory a live server can load: ``MORALSCOPE_ENGINE_FACTORY=tests.support.fake_engine:engine_factory``.

Every model of every job then runs on :class:`tests.workers.fake_engine.FakeEngine` (deterministic,
no model weights; its switches come from the spec's ``engine_options``, e.g. ``{"delay_s": 0.2}`` per
batch, ``{"log_dir": ...}`` to record what was served). The model named in the spec is still resolved
(its tokenizer renders the prompts), so specs can keep naming ``smollm2-135m-instruct``.
"""

from __future__ import annotations

from schemas.inference import EngineConfig
from tests.workers.fake_engine import FakeEngine

SETTING = "tests.support.fake_engine:engine_factory"
"""The value of MORALSCOPE_ENGINE_FACTORY that selects this factory."""


def engine_factory(config: EngineConfig) -> FakeEngine:
    return FakeEngine(config)
