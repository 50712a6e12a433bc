"""Digests of a job's planned prompts, per (benchmark, condition): when two jobs' results may be combined.

A sweep run as separate jobs (one model each) is read as one study only where every job asked the same
questions the same way. Each (benchmark, condition) of a plan gets three fingerprints, written into the
job's ``spec.json`` (``prompt_digests``) when it is planned:

- ``items_sha256``: sha256 over the sorted (item_id, variant, cluster, category) of its prompts — the item
  selection (benchmark settings, limits, sampling seed);
- ``prompts_sha256``: sha256 over every prompt's turns (human turn, answer prefix, CoT lead-in and
  follow-up) and answer candidates (labels and surface forms), in item order. These are the templates
  *before* a model's format is applied (the format — chat template or Human/Assistant — is the model's, and
  models may differ between combined jobs), so the same spec gives the same digest whatever the models,
  while another condition wording, another benchmark version or other items do not;
- ``cot``: for a chain-of-thought condition, the reasoning sampling settings (``max_new_tokens``,
  ``temperature``, ``top_p``, ``samples``); null otherwise.

Two jobs' cells are comparable when all three agree (``service.report.combine`` checks, and says which cells
it could not combine and why).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from evals.prompts import EvalPrompt
from schemas.spec import JobSpec

__all__ = ["prompt_digests"]


def _sha256(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()).hexdigest()


def _template(prompt: EvalPrompt) -> list[Any]:
    turns = prompt.turns
    cot = None if turns.cot is None else [turns.cot.lead_in, turns.cot.follow_up]
    candidates = [[c.label, list(c.forms)] for c in prompt.candidates]
    return [prompt.key, turns.human, turns.answer_prefix, cot, candidates]


def prompt_digests(job: JobSpec, prompts: Mapping[str, Mapping[str, Sequence[EvalPrompt]]]) -> list[dict[str, Any]]:
    """One entry per (benchmark, condition) of ``prompts`` (as :func:`evals.benchmarks.benchmark_prompts` gives
    them, by benchmark): its name, item count and the digests of the module docstring."""
    entries = []
    for benchmark, by_condition in prompts.items():
        for condition, planned in by_condition.items():
            items = sorted([p.item_id, p.variant or "", p.cluster, p.category or ""] for p in planned)
            is_cot = any(p.is_cot for p in planned)
            entries.append(
                {
                    "benchmark": benchmark,
                    "condition": condition,
                    "items": len(planned),
                    "items_sha256": _sha256(items),
                    "prompts_sha256": _sha256([_template(p) for p in planned]),
                    "cot": job.cot.model_dump(mode="json") if is_cot else None,
                }
            )
    return entries
