"""Default locations on disk, shared by every package (environment only; nothing is created here)."""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir() -> Path:
    """``$MORALSCOPE_CACHE_DIR``, else ``$XDG_CACHE_HOME/moralscope``, else ``~/.cache/moralscope``.

    Datasets are cached under ``datasets/`` and converted models under ``models/``.
    """
    if env := os.environ.get("MORALSCOPE_CACHE_DIR"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "moralscope"


def default_state_dir() -> Path:
    """``$XDG_STATE_HOME/moralscope``, else ``~/.local/state/moralscope``: the job store and local results."""
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "moralscope"
