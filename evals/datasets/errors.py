"""The errors of dataset files (all :class:`~schemas.errors.DataError`)."""

from __future__ import annotations

from evals.datasets.download import DownloadError
from schemas.errors import DataError


class DatasetMissingError(DataError):
    """A dataset file is in none of the places looked and cannot be downloaded."""


class DatasetChecksumError(DataError):
    """A dataset file's sha256 differs from the pinned one."""


class DatasetFormatError(DataError):
    """A dataset file's content cannot be parsed (the message names file:line)."""


DatasetDownloadError = DownloadError
"""A download failed (HTTP error, network error, wrong content or a write error)."""
