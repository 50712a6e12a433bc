"""Model resolution: a name the user writes → a local folder an engine can load (see :mod:`workers.models`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from schemas.errors import ModelResolutionError
from schemas.inference import ResolvedModel
from schemas.paths import default_cache_dir
from workers.models.builtin import BUILTIN_MODELS, prepare_builtin
from workers.models.fingerprint import weights_fingerprint
from workers.models.hub import HF_ID, download_snapshot
from workers.models.local import check_model_folder


def model_name_kind(name: str) -> Literal["builtin", "path", "hub", "other"]:
    """How a model name reads by its syntax alone, without looking at any disk.

    ``path``: absolute, ``~``, ``./`` or ``../`` (or ``.``/``..``), or any other name with a slash that is not
    a Hub id; ``hub``: ``org/name``; ``builtin``: a name of :data:`BUILTIN_MODELS`; else ``other``.
    """
    if name in BUILTIN_MODELS:
        return "builtin"
    if name.startswith(("/", "~", "./", "../")) or name in (".", ".."):
        return "path"
    if HF_ID.match(name):
        return "hub"
    return "path" if "/" in name or os.sep in name else "other"


def resolve_model(
    name: str,
    revision: str | None = None,
    *,
    cache_dir: Path | None = None,
    download: bool = True,
    any_local_folder: bool = True,
) -> ResolvedModel:
    """Locate (preparing or downloading if needed) the model ``name`` and describe it.

    With ``any_local_folder=False`` (jobs submitted over the API) a name is a local folder only when it is
    written as a path (:func:`model_name_kind`): ``org/name`` is then always a Hub id, never a folder of
    that name in the server's working directory. Raises :class:`~schemas.errors.ModelResolutionError`
    with what is wrong and how to fix it.
    """
    models_dir = (cache_dir or default_cache_dir()) / "models"
    if name in BUILTIN_MODELS:
        if revision is not None:
            raise ModelResolutionError(
                f"revision applies to Hugging Face ids only; the built-in model {name!r} has none, got {revision!r}",
                field="revision",
            )
        return prepare_builtin(name, BUILTIN_MODELS[name], models_dir)
    local = Path(name).expanduser()
    if (any_local_folder or model_name_kind(name) == "path") and local.is_dir():
        if revision is not None:
            raise ModelResolutionError(
                f"revision applies to Hugging Face ids only, not to the local folder {name!r}", field="revision"
            )
        folder = local.resolve()
        check_model_folder(folder)
        return ResolvedModel(
            name=name, path=str(folder), fingerprint=weights_fingerprint(folder), extra={"source": "local"}
        )
    if HF_ID.match(name) and not name.startswith((".", "~")):
        folder, commit = download_snapshot(name, revision, models_dir / "hf", download=download)
        check_model_folder(folder)
        return ResolvedModel(
            name=name,
            path=str(folder),
            revision=commit,
            fingerprint=weights_fingerprint(folder),
            extra={"source": "hub"},
        )
    if name.startswith(("/", ".", "~")) or os.sep in name:
        raise ModelResolutionError(f"model folder {name!r} does not exist", field="model")
    builtins = ", ".join(sorted(BUILTIN_MODELS))
    raise ModelResolutionError(
        f"unknown model {name!r}: use a built-in name ({builtins}), a Hugging Face id like "
        "'HuggingFaceTB/SmolLM2-135M-Instruct', or the path of a local model folder",
        field="model",
    )
