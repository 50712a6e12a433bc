"""Where every upstream dataset file comes from, and how a local copy is found and verified.

Every file the benchmarks read is registered in :data:`DATASET_FILES` (loaded from the package file
``evals/registry.json``) under its path relative to a data directory (the layout of
``shared/datasets``), with a URL pinned to an upstream commit, its sha256, row count, license and
citation (values from the ``PROVENANCE.md`` files next to the data).

:class:`DatasetSources` resolves a file in this order, verifying its sha256 wherever it is found:

1. the explicit ``data_dir``;
2. ``$MORALSCOPE_DATA_DIR``;
3. the user cache (``cache_dir``, default ``$MORALSCOPE_CACHE_DIR/datasets`` or ``~/.cache/moralscope/datasets``);
4. a download into the cache (sha256 checked while streaming, written to a temporary file and renamed
   into place), from the pinned upstream URL or ``{mirror}/{key}`` when a mirror is set
   (``mirror_url`` or ``$MORALSCOPE_DATASET_MIRROR``, for air-gapped clusters).

A file found but corrupt is an error, never skipped: a corrupt copy is not silently replaced by
another one. Errors are :class:`~schemas.errors.DataError` subclasses whose message names the file,
what was expected and how to fix it.
"""

from evals.datasets.errors import (
    DatasetChecksumError,
    DatasetDownloadError,
    DatasetFormatError,
    DatasetMissingError,
)
from evals.datasets.readers import iter_jsonl, read_table
from evals.datasets.registry import DATASET_FILES, DATASETS, DatasetFile, bbq_key, select_keys
from evals.datasets.sources import (
    DATA_DIR_ENV,
    MIRROR_ENV,
    DatasetSources,
    FileState,
    FileStatus,
    PullResult,
    file_sha256,
)

__all__ = [
    "DATASETS",
    "DATASET_FILES",
    "DATA_DIR_ENV",
    "MIRROR_ENV",
    "DatasetChecksumError",
    "DatasetDownloadError",
    "DatasetFile",
    "DatasetFormatError",
    "DatasetMissingError",
    "DatasetSources",
    "FileState",
    "FileStatus",
    "PullResult",
    "bbq_key",
    "file_sha256",
    "iter_jsonl",
    "read_table",
    "select_keys",
]
