"""The dataset files the benchmarks read: pinned, found, verified and downloaded.

- :mod:`~evals.datasets.registry`: every upstream file (URL pinned to a commit, sha256, rows, license,
  citation), from the package file ``evals/registry.json``;
- :mod:`~evals.datasets.sources`: :class:`DatasetSources`, the resolution order (explicit folder,
  ``$MORALSCOPE_DATA_DIR``, cache, download) with a sha256 check wherever a file is found;
- :mod:`~evals.datasets.download`: downloads through pooch (verified before they land), once across
  processes (filelock);
- :mod:`~evals.datasets.readers`: JSON-lines and CSV/TSV readers whose errors name file:line;
- :mod:`~evals.datasets.errors`: the :class:`~schemas.errors.DataError` subclasses.
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
