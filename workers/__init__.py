"""Inference: model resolution, the engine interface and its engines, and the Ray actors that host them.

- :mod:`workers.models`: a model name (built-in, Hugging Face id, local folder) → a local folder;
- :mod:`workers.engine`: the :class:`~workers.engine.Engine` interface and the tokenisation rule;
- :mod:`workers.rendering`: dialogues → prompt text in a model's format;
- :mod:`workers.hf` (torch; a package: prefix cache, batch-invariant arithmetic) and
  :mod:`workers.vllm_engine` (vLLM): the engines;
- :mod:`workers.actor`, :mod:`workers.pool`, :mod:`workers.cluster`: hosting engines on Ray, with
  :mod:`workers.placement` (a pool's resources reserved at once), :mod:`workers.routing` (which batch
  an actor runs next), :mod:`workers.deadlines` (when a batch counts as hung) and
  :mod:`workers.progress` (what a pool reports).

Importing the package is cheap: torch, transformers, vLLM and Ray load only in the modules that use them.
``workers`` never knows what a benchmark is and never imports ``evals`` or ``service``.
"""
