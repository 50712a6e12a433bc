"""Hugging Face Hub models: downloaded with ``huggingface_hub`` into ``<cache>/models/hf/``.

Config, tokenizer, chat template, and safetensors weights when the repo has them, else ``.bin``; the
resolved commit is recorded as the revision. Offline (``download=False`` or ``HF_HUB_OFFLINE=1``) only
that cache is used.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from schemas.errors import ModelResolutionError

HF_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
"""What a Hugging Face model id looks like: ``org/name``."""


def download_snapshot(repo_id: str, revision: str | None, hub_cache: Path, *, download: bool) -> tuple[Path, str]:
    """(snapshot folder, commit) of a Hub model, downloading what is missing unless offline."""
    import huggingface_hub
    from huggingface_hub import errors

    offline = not download or os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")
    offline = offline or bool(huggingface_hub.constants.HF_HUB_OFFLINE)
    where = f"{repo_id!r}" + (f" at revision {revision!r}" if revision else "")
    try:
        if offline:
            path = huggingface_hub.snapshot_download(
                repo_id, revision=revision, cache_dir=hub_cache, local_files_only=True
            )
        else:
            info = huggingface_hub.HfApi().model_info(repo_id, revision=revision)
            files = hub_files_to_download([s.rfilename for s in info.siblings or []])
            path = huggingface_hub.snapshot_download(
                repo_id, revision=info.sha, cache_dir=hub_cache, allow_patterns=files
            )
    except errors.GatedRepoError as exc:
        raise ModelResolutionError(
            f"{where} is gated: accept its licence on huggingface.co and log in (`hf auth login` or HF_TOKEN)",
            field="model",
        ) from exc
    except errors.RepositoryNotFoundError as exc:
        raise ModelResolutionError(
            f"no Hugging Face model {repo_id!r} (or it is private: set HF_TOKEN)", field="model"
        ) from exc
    except errors.RevisionNotFoundError as exc:
        raise ModelResolutionError(f"model {repo_id!r} has no revision {revision!r}", field="revision") from exc
    except Exception as exc:  # offline mode, DNS, proxy, timeout: all "cannot reach the Hub"
        mode = "offline mode is on and" if offline else "the Hugging Face Hub cannot be reached and"
        raise ModelResolutionError(
            f"cannot resolve {where}: {mode} it is not in the model cache {hub_cache} ({type(exc).__name__}: {exc}). "
            f"Either download it once on a machine with network (`moralscope models prepare {repo_id}` with the "
            "same cache directory), or pass the path of a local model folder (e.g. from `hf download`), "
            "or set HF_HUB_OFFLINE=1 with a populated cache",
            field="model",
        ) from exc
    folder = Path(str(path))
    return folder, folder.name  # the snapshot folder is named by its commit


def hub_files_to_download(repo_files: list[str]) -> list[str]:
    """Top-level config, tokenizer and chat-template files, plus one weight format (safetensors preferred)."""
    top = [f for f in repo_files if "/" not in f]
    weights = [f for f in top if f.endswith(".safetensors")]
    kind = ".safetensors"
    if not weights:
        weights = [f for f in top if f.startswith("pytorch_model") and f.endswith(".bin")]
        kind = ".bin"
    support = [
        f
        for f in top
        if f.endswith((".json", ".txt", ".model", ".jinja", ".tiktoken"))
        and not (f.endswith(".index.json") and not f.endswith(f"{kind}.index.json"))
    ]
    return sorted(set(support + weights))
