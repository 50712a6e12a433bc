"""Fingerprints of model weights: cheap, stable, and different for different checkpoints.

:func:`weights_fingerprint` is a sha256 over each weight file's name, size, safetensors header (dtypes,
shapes, offsets) and 16 evenly spaced 64 KiB samples of its bytes. The samples make two checkpoints
of the same architecture (e.g. RLHF steps 50 and 100) differ without reading gigabytes; the same
files give the same fingerprint wherever they live.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from workers.models.local import weight_files

_SAMPLES_PER_FILE = 16
_SAMPLE_BYTES = 64 * 1024


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
    """sha256 of a whole file."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
