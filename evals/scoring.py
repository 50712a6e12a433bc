"""From the engine's per-surface-form log-probabilities to each answer's probability (SPEC §3–5).

An answer's probability is the sum of the probabilities of its surface forms (``" (a)"``,
``"(a)"``, …). Two forms that tokenise to the same token ids are one event and count once.
Probabilities are normalised over the answers; the unnormalised total ("mass") is kept so that a
model that puts little weight on any answer can be spotted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from evals.prompts import Candidate
from schemas.inference import ContinuationScore


@dataclass(frozen=True, slots=True)
class AnswerScores:
    """Each answer's log-probability and normalised probability, in candidate order."""

    labels: tuple[str, ...]
    logprobs: tuple[float, ...]
    """log P(answer) = log Σ_forms exp(logprob(form)), in nats."""
    probs: tuple[float, ...]
    """P(answer) / Σ P(answers)."""
    mass: float
    """Σ P(answers), unnormalised."""

    @property
    def chosen(self) -> str:
        """The answer with the highest probability (the first one on a tie)."""
        best = max(range(len(self.logprobs)), key=lambda i: (self.logprobs[i], -i))
        return self.labels[best]

    def prob(self, label: str) -> float:
        return self.probs[self.labels.index(label)]


def _logsumexp(values: Sequence[float]) -> float:
    top = max(values)
    if top == -math.inf:
        return -math.inf
    return top + math.log(sum(math.exp(v - top) for v in values))


def flatten_forms(candidates: Sequence[Candidate]) -> tuple[str, ...]:
    """Every surface form of every candidate, in order: the continuations of one ScoreRequest."""
    return tuple(form for candidate in candidates for form in candidate.forms)


def combine_forms(candidates: Sequence[Candidate], scores: Sequence[ContinuationScore]) -> AnswerScores:
    """Fold per-form scores (in :func:`flatten_forms` order) into per-answer scores."""
    expected = sum(len(c.forms) for c in candidates)
    if len(scores) != expected:
        raise ValueError(f"expected {expected} continuation scores (one per surface form), got {len(scores)}")
    logprobs = []
    position = 0
    for candidate in candidates:
        seen: set[tuple[int, ...]] = set()
        values = []
        for score in scores[position : position + len(candidate.forms)]:
            if score.token_ids in seen:
                continue
            seen.add(score.token_ids)
            values.append(score.logprob)
        position += len(candidate.forms)
        logprobs.append(_logsumexp(values))
    total = _logsumexp(logprobs)
    if total == -math.inf:
        probs = tuple(math.nan for _ in logprobs)
    else:
        probs = tuple(math.exp(lp - total) for lp in logprobs)
    return AnswerScores(
        labels=tuple(c.label for c in candidates),
        logprobs=tuple(logprobs),
        probs=probs,
        mass=math.exp(total),
    )
