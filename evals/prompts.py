"""What a benchmark hands to the runner: prompts to score, with their answer candidates.

Each benchmark module renders an item under a condition into :class:`PromptTurns` (the human turn,
the answer prefix and, for CoT conditions, the reasoning lead-in and follow-up). The dialogues are
built from those turns here, once for every benchmark:

- no CoT:  Human(question) → Assistant(answer prefix …)
- CoT, stage one: Human(question) → Assistant(lead-in …)            — the model samples its reasoning
- CoT, stage two: Human(question) → Assistant(lead-in + reasoning) → Human(follow-up) → Assistant(answer prefix …)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from evals.conditions import Condition
from schemas.dialogue import Dialogue, Turn

REASONING_PLACEHOLDER = "{{REASONING}}"
"""Shown in place of the sampled reasoning when a CoT prompt is printed before it exists."""


@dataclass(frozen=True, slots=True)
class Candidate:
    """One answer and the surface forms whose probabilities add up to its probability."""

    label: str
    """The answer's name in results (``a``, ``female``, ``yes``)."""
    forms: tuple[str, ...]
    """Continuations scored after the answer prefix (e.g. ``" (a)"``, ``"(a)"``)."""


@dataclass(frozen=True, slots=True)
class CotTurns:
    """The chain-of-thought part of a prompt."""

    lead_in: str
    follow_up: str


@dataclass(frozen=True, slots=True)
class PromptTurns:
    """An item rendered under a condition, before it becomes a dialogue."""

    human: str
    """The (first) human turn."""
    answer_prefix: str
    """The open assistant turn the answer is read from."""
    cot: CotTurns | None = None

    def reasoning_dialogue(self) -> Dialogue:
        """Stage one of a CoT prompt: the model continues the lead-in with its reasoning."""
        if self.cot is None:
            raise ValueError("not a chain-of-thought prompt")
        return Dialogue.single(self.human, self.cot.lead_in)

    def answer_dialogue(self, reasoning: str | None = None) -> Dialogue:
        """The dialogue whose next tokens are scored; CoT prompts need their sampled reasoning."""
        if self.cot is None:
            return Dialogue.single(self.human, self.answer_prefix)
        if reasoning is None:
            raise ValueError("a chain-of-thought prompt needs its reasoning before it can be scored")
        return Dialogue(
            (
                Turn("user", self.human),
                Turn("assistant", self.cot.lead_in + reasoning),
                Turn("user", self.cot.follow_up),
                Turn("assistant", self.answer_prefix),
            )
        )


def condition_turns(
    condition: Condition,
    *,
    human: str,
    answer_prefix: str,
    follow_up: str,
    cot_answer_prefix: str | None = None,
) -> PromptTurns:
    """A question's turns under a condition: with the CoT turns when the condition has a lead-in.

    ``follow_up`` is the benchmark's own follow-up (used unless the condition brings one);
    ``cot_answer_prefix`` replaces the answer prefix after reasoning (BBQ's "single, most likely" prefix).
    """
    if condition.cot_lead_in is None:
        return PromptTurns(human=human, answer_prefix=answer_prefix)
    cot = CotTurns(lead_in=condition.cot_lead_in, follow_up=condition.cot_follow_up or follow_up)
    return PromptTurns(human=human, answer_prefix=cot_answer_prefix or answer_prefix, cot=cot)


@dataclass(frozen=True, slots=True)
class EvalPrompt:
    """One row of the samples table before it is scored: an item (and variant) under a condition."""

    benchmark: str
    condition: str
    item_id: str
    variant: str | None
    category: str | None
    cluster: str
    """The bootstrap's resampling unit (SPEC §7)."""
    turns: PromptTurns
    candidates: tuple[Candidate, ...]
    item: Any
    """The benchmark's typed item (BbqItem, WinogenderItem, LawSchoolStudent)."""

    @property
    def key(self) -> str:
        """Unique within a (model, benchmark, condition): the item and its variant."""
        return self.item_id if self.variant is None else f"{self.item_id}#{self.variant}"

    @property
    def is_cot(self) -> bool:
        return self.turns.cot is not None
