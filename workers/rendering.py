"""Dialogue → prompt text in a model's format (SPEC §2), needing only the model's tokenizer.

``human_assistant`` is the study's plain-text format; ``chat`` is the model's own chat template with
the final assistant turn pre-filled and left open (no end-of-turn token after the prefix); ``auto``
is ``chat`` when the tokenizer has a chat template, else ``human_assistant``.

The renderer is cheap (a tokenizer), so the service renders prompts in the driver and sends plain
text to the engines; the engines use the same renderer for tokenisation.
"""

from __future__ import annotations

import threading
from typing import Any

from schemas.dialogue import HUMAN_ASSISTANT_TURN_MARKER, Dialogue, render_human_assistant
from schemas.inference import PromptFormat, ResolvedPromptFormat

_TRANSFORMERS_IMPORT = threading.Lock()
"""transformers' lazy first import is not thread-safe: jobs validated side by side (several job
threads) would see ``cannot import name 'AutoTokenizer'``."""


def preload_tokenizers() -> None:
    """Import transformers' tokenizer machinery now (seconds), e.g. while a server starts, so that the
    first job a replica claims (a takeover) does not wait for it."""
    with _TRANSFORMERS_IMPORT:
        from transformers import AutoTokenizer  # noqa: F401


class PromptRenderer:
    """Renders dialogues and encodes prompt text for one model."""

    def __init__(self, tokenizer: Any, prompt_format: PromptFormat = "auto") -> None:
        self.tokenizer = tokenizer
        has_template = bool(getattr(tokenizer, "chat_template", None))
        if prompt_format == "chat" and not has_template:
            raise ValueError(
                "prompt_format is 'chat' but the model's tokenizer has no chat template; "
                "use prompt_format: human_assistant (or auto)"
            )
        resolved: ResolvedPromptFormat
        if prompt_format == "auto":
            resolved = "chat" if has_template else "human_assistant"
        elif prompt_format in ("chat", "human_assistant"):
            resolved = prompt_format
        else:
            raise ValueError(f"prompt_format must be auto, chat or human_assistant, got {prompt_format!r}")
        self.prompt_format: ResolvedPromptFormat = resolved

    @classmethod
    def from_pretrained(cls, model_path: str, prompt_format: PromptFormat = "auto") -> PromptRenderer:
        """Load the tokenizer of a resolved model folder."""
        with _TRANSFORMERS_IMPORT:
            from transformers import AutoTokenizer

        return cls(AutoTokenizer.from_pretrained(model_path), prompt_format)

    def render(self, dialogue: Dialogue) -> str:
        """The prompt text; it ends with the open assistant turn's prefix."""
        if self.prompt_format == "human_assistant":
            return render_human_assistant(dialogue)
        messages = [{"role": turn.role, "content": turn.text} for turn in dialogue.turns]
        if dialogue.assistant_prefix:
            text = self.tokenizer.apply_chat_template(messages, tokenize=False, continue_final_message=True)
        else:
            text = self.tokenizer.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
        return str(text)

    @property
    def stop_strings(self) -> tuple[str, ...]:
        """Where a sampled assistant turn ends: the next turn marker, or the template's end of turn."""
        if self.prompt_format == "human_assistant":
            return (HUMAN_ASSISTANT_TURN_MARKER,)
        eos = getattr(self.tokenizer, "eos_token", None)
        return (eos,) if eos else ()

    def encode(self, text: str) -> list[int]:
        """Token ids of prompt text (special tokens added for human_assistant; a chat text has them)."""
        ids = self.tokenizer(text, add_special_tokens=self.prompt_format == "human_assistant")["input_ids"]
        return list(ids)
