"""Dialogues: what evals/ produces and an engine renders into prompt text.

A dialogue is a sequence of user / assistant turns whose **last turn is an assistant turn left
open**: its text is a prefix the model continues (SPEC §2). Rendering it (``human_assistant`` text
or the model's chat template) is the engine's job; building it is evals'.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Role = Literal["user", "assistant"]


@dataclass(frozen=True, slots=True)
class Turn:
    """One turn of a dialogue."""

    role: Role
    """``user`` (the study's "Human") or ``assistant``."""
    text: str
    """The turn's text exactly as it is rendered."""


@dataclass(frozen=True, slots=True)
class Dialogue:
    """Turns ending in an open assistant turn whose text is the prefix the model continues."""

    turns: tuple[Turn, ...]

    def __post_init__(self) -> None:
        if not self.turns or self.turns[-1].role != "assistant":
            raise ValueError("a dialogue must end with an (open) assistant turn")
        if self.turns[0].role != "user":
            raise ValueError("a dialogue must start with a user turn")
        for before, after in zip(self.turns, self.turns[1:], strict=False):
            if before.role == after.role:
                raise ValueError(f"turns must alternate user/assistant, got two {after.role} turns in a row")

    @classmethod
    def single(cls, human: str, assistant_prefix: str) -> Dialogue:
        """One human turn and an open assistant turn."""
        return cls((Turn("user", human), Turn("assistant", assistant_prefix)))

    @property
    def assistant_prefix(self) -> str:
        """The open assistant turn's text."""
        return self.turns[-1].text

    @property
    def closed_turns(self) -> tuple[Turn, ...]:
        """Every turn but the open one."""
        return self.turns[:-1]


HUMAN_ASSISTANT_TURN_MARKER = "\n\nHuman:"
"""Where a sampled assistant turn ends in the ``human_assistant`` format (SPEC §6)."""


def render_human_assistant(dialogue: Dialogue) -> str:
    """The study's plain-text format (SPEC §2).

    ``"\\n\\nHuman: {human turn}\\n\\nAssistant: {assistant turn}"`` for every turn, the last assistant
    turn left open (no trailing text after its prefix).
    """
    parts = []
    for turn in dialogue.turns:
        speaker = "Human" if turn.role == "user" else "Assistant"
        parts.append(f"\n\n{speaker}: {turn.text}")
    return "".join(parts)
