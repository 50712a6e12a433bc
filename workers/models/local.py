"""Local model folders: which files are the weights, and whether a folder holds a loadable model."""

from __future__ import annotations

import json
from pathlib import Path

from schemas.errors import ModelResolutionError

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "spiece.model", "vocab.txt", "tiktoken.model")


def weight_files(folder: Path) -> list[Path]:
    """The folder's weight files: safetensors when present (they are what gets loaded), else ``.bin``."""
    safetensors = sorted(folder.glob("*.safetensors"))
    return safetensors or sorted(folder.glob("pytorch_model*.bin"))


def check_model_folder(folder: Path) -> None:
    """Raise a :class:`ModelResolutionError` naming everything a loadable model folder lacks."""
    missing = []
    if not (folder / "config.json").is_file():
        missing.append("config.json")
    if not weight_files(folder):
        missing.append("weights (*.safetensors or pytorch_model*.bin)")
    if not any((folder / f).is_file() for f in _TOKENIZER_FILES) and not any(folder.glob("*.tiktoken")):
        missing.append(f"a tokenizer (one of {', '.join(_TOKENIZER_FILES)})")
    for index in folder.glob("*.index.json"):
        try:
            shards = set(json.loads(index.read_text())["weight_map"].values())
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelResolutionError(f"{index} is not a valid weight index ({exc}); re-download the model") from exc
        missing.extend(
            f"{shard} (listed in {index.name})" for shard in sorted(shards) if not (folder / shard).is_file()
        )
    if missing:
        raise ModelResolutionError(
            f"model folder {folder} is incomplete: missing {'; '.join(missing)}. A model folder needs what "
            "`save_pretrained` writes for a model and its tokenizer (or pass a Hugging Face id to download one)",
            field="model",
        )
