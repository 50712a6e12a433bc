"""How a local copy of a registered dataset file is found, verified and (if allowed) downloaded.

Files are named by their registry key (:data:`~evals.datasets.registry.DATASET_FILES`), a path relative
to a data directory. :class:`DatasetSources` resolves a file in this order, verifying its sha256
wherever it is found:

1. the explicit ``data_dir``;
2. ``$MORALSCOPE_DATA_DIR``;
3. the user cache (``cache_dir``, default ``$MORALSCOPE_CACHE_DIR/datasets`` or ``~/.cache/moralscope/datasets``);
4. a download into the cache (:mod:`evals.datasets.download`: pooch checks the sha256 before the file
   is renamed into place; a file lock makes concurrent processes download it once), from the pinned
   upstream URL or ``{mirror}/{key}`` when a mirror is set (``mirror_url`` or
   ``$MORALSCOPE_DATASET_MIRROR``, for air-gapped clusters).

A file found but corrupt is an error, never skipped: a corrupt copy is not silently replaced by
another one. Errors are :class:`~schemas.errors.DataError` subclasses whose message names the file,
what was expected and how to fix it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import threading
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from evals.datasets.download import DownloadError, fetch, registry_for
from evals.datasets.errors import DatasetChecksumError, DatasetDownloadError, DatasetMissingError
from evals.datasets.registry import DATASET_FILES, DatasetFile, select_keys
from schemas.errors import DataError, InvalidInputError
from schemas.paths import default_cache_dir

DATA_DIR_ENV = "MORALSCOPE_DATA_DIR"
MIRROR_ENV = "MORALSCOPE_DATASET_MIRROR"

# -- sha256 verification, cached per process --------------------------------------------------------

_verified: dict[tuple[str, int, int], str] = {}
_verified_lock = threading.Lock()


def file_sha256(path: Path) -> str:
    """sha256 (hex) of a file; cached per process by (path, size, mtime) so each file is hashed once."""
    stat = path.stat()
    cache_key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    with _verified_lock:
        cached = _verified.get(cache_key)
    if cached is not None:
        return cached
    with path.open("rb") as handle:
        value = hashlib.file_digest(handle, "sha256").hexdigest()
    with _verified_lock:
        _verified[cache_key] = value
    return value


def _checksum_error(entry: DatasetFile, path: Path, actual: str) -> DatasetChecksumError:
    return DatasetChecksumError(
        f"{path} (dataset file {entry.key}) is corrupt or a different version: sha256 is {actual}, "
        f"expected {entry.sha256} (upstream {entry.url}). Delete it and run "
        f"`moralscope data pull --only {entry.key}`, or replace it with the pinned upstream file."
    )


FileState = Literal["ok", "missing", "corrupt", "unreadable"]


@dataclass(frozen=True, slots=True)
class FileStatus:
    """Where one registered file is and whether it is intact."""

    key: str
    dataset: str
    state: FileState
    location: str | None
    """The path found (the first place in resolution order that has the file)."""
    where: str | None
    """Which place: ``data_dir``, ``MORALSCOPE_DATA_DIR`` or ``cache``."""
    sha256_ok: bool | None
    """None when the file is missing or unreadable."""
    rows: int
    """Registered row count (the pinned file's)."""
    detail: str | None = None
    """Why the file is not ok, in words."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True, slots=True)
class PullResult:
    """What :meth:`DatasetSources.pull` did for one file."""

    key: str
    action: Literal["present", "downloaded", "failed"]
    path: str | None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# -- sources ---------------------------------------------------------------------------------------


class DatasetSources:
    """Finds, verifies and (if allowed) downloads the registered dataset files.

    ``$MORALSCOPE_DATA_DIR`` and ``$MORALSCOPE_DATASET_MIRROR`` are read when the object is built;
    ``progress`` draws a download progress bar on stderr.
    """

    def __init__(
        self,
        data_dir: str | Path | None = None,
        *,
        cache_dir: str | Path | None = None,
        download: bool = True,
        mirror_url: str | None = None,
        progress: bool = False,
        download_retries: int = 2,
    ) -> None:
        self.data_dir = Path(data_dir).expanduser() if data_dir is not None else None
        env_dir = os.environ.get(DATA_DIR_ENV)
        self.env_data_dir = Path(env_dir).expanduser() if env_dir else None
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir() / "datasets"
        self.download = download
        mirror = mirror_url if mirror_url is not None else os.environ.get(MIRROR_ENV) or None
        self.mirror_url = mirror.rstrip("/") if mirror else None
        self.progress = progress
        self.download_retries = download_retries
        """How many more times a failed download is tried (pooch waits 1 s, then 2 s, … in between)."""

    def __repr__(self) -> str:
        return (
            f"DatasetSources(data_dir={self.data_dir}, env_data_dir={self.env_data_dir}, cache_dir={self.cache_dir}, "
            f"download={self.download}, mirror_url={self.mirror_url})"
        )

    # -- lookup --------------------------------------------------------------------------------

    @staticmethod
    def entry(key: str) -> DatasetFile:
        """The registry entry of ``key``."""
        try:
            return DATASET_FILES[key]
        except KeyError:
            raise InvalidInputError(
                f"unknown dataset file {key!r}; registered files: {', '.join(DATASET_FILES)}"
            ) from None

    def places(self) -> list[tuple[str, Path]]:
        """The directories searched, in resolution order, as (name, directory)."""
        found: list[tuple[str, Path]] = []
        if self.data_dir is not None:
            found.append(("data_dir", self.data_dir))
        if self.env_data_dir is not None:
            found.append((DATA_DIR_ENV, self.env_data_dir))
        found.append(("cache", self.cache_dir))
        return found

    def url_for(self, key: str) -> str:
        """Where ``key`` is downloaded from: the mirror if one is set, else the pinned upstream URL."""
        entry = self.entry(key)
        if self.mirror_url:
            return f"{self.mirror_url}/{urllib.parse.quote(entry.key)}"
        return entry.url

    def _find(self, key: str) -> tuple[str, Path] | None:
        for name, directory in self.places():
            candidate = directory / key
            if candidate.is_file():
                return name, candidate
        return None

    def path(self, key: str) -> Path:
        """A verified local copy of ``key`` (downloaded into the cache if it is nowhere else)."""
        entry = self.entry(key)
        found = self._find(key)
        if found is not None:
            _, path = found
            self._verify(entry, path)
            return path
        if not self.download:
            raise self._missing_error(entry, "downloads are disabled")
        try:
            return self._download(entry, self.cache_dir)
        except DownloadError as exc:
            raise self._missing_error(entry, exc.reason) from exc

    def _verify(self, entry: DatasetFile, path: Path) -> None:
        try:
            actual = file_sha256(path)
        except OSError as exc:
            raise DataError(f"cannot read dataset file {path}: {exc.strerror or exc}") from exc
        if actual != entry.sha256:
            raise _checksum_error(entry, path, actual)

    def _missing_error(self, entry: DatasetFile, reason: str) -> DatasetMissingError:
        looked = "; ".join(f"{name}: {directory / entry.key}" for name, directory in self.places())
        return DatasetMissingError(
            f"dataset file {entry.key} not found locally ({reason}). Looked in {looked}. Fix: run "
            f"`moralscope data pull --only {entry.key}` (downloads {self.url_for(entry.key)}), or set {DATA_DIR_ENV} to a "
            f"folder that holds {entry.key}, or set a mirror with {MIRROR_ENV}."
        )

    # -- download ------------------------------------------------------------------------------

    def _download(self, entry: DatasetFile, root: Path) -> Path:
        """Fetch ``entry`` into ``root`` and verify it (a copy another process fetched meanwhile is checked too)."""
        files = {key: (self.url_for(key), file.sha256) for key, file in DATASET_FILES.items()}
        pup = registry_for(root, files, retries=self.download_retries)
        path = fetch(pup, entry.key, sha256=entry.sha256, progress=self.progress, fix=self._download_fix(entry))
        self._verify(entry, path)
        return path

    def _download_fix(self, entry: DatasetFile) -> str:
        return (
            f"Fix: check the network or the mirror ({MIRROR_ENV}), or place the pinned file (sha256 {entry.sha256}) "
            f"at {DATA_DIR_ENV}/{entry.key}."
        )

    # -- status and pull -----------------------------------------------------------------------

    def status(self, only: str | None = None) -> list[FileStatus]:
        """One row per registered file (or per file named by ``only``); never downloads."""
        rows = []
        for key in select_keys(only):
            entry = DATASET_FILES[key]
            found = self._find(key)
            if found is None:
                rows.append(FileStatus(key, entry.dataset, "missing", None, None, None, entry.rows))
                continue
            where, path = found
            try:
                actual = file_sha256(path)
            except OSError as exc:
                detail = f"cannot read: {exc.strerror or exc}"
                rows.append(FileStatus(key, entry.dataset, "unreadable", str(path), where, None, entry.rows, detail))
                continue
            if actual == entry.sha256:
                rows.append(FileStatus(key, entry.dataset, "ok", str(path), where, True, entry.rows))
            else:
                detail = f"sha256 {actual}, expected {entry.sha256}"
                rows.append(FileStatus(key, entry.dataset, "corrupt", str(path), where, False, entry.rows, detail))
        return rows

    def pull(self, only: str | None = None, dest: str | Path | None = None, *, strict: bool = True) -> list[PullResult]:
        """Download every selected file that is missing, verified.

        Without ``dest`` a file already present (and intact) in any searched place is left alone and
        missing ones go to the cache; with ``dest`` the files are made present in ``dest``. Every file
        is attempted; with ``strict`` a :class:`DatasetDownloadError` listing the failures is raised
        at the end, otherwise failures are reported in the results.
        """
        results: list[PullResult] = []
        for key in select_keys(only):
            entry = DATASET_FILES[key]
            try:
                results.append(self._pull_one(entry, Path(dest).expanduser() if dest is not None else None))
            except DataError as exc:
                results.append(PullResult(key, "failed", None, exc.message))
        failures = [r for r in results if r.action == "failed"]
        if strict and failures:
            listed = "\n".join(f"- {r.key}: {r.error}" for r in failures)
            raise DatasetDownloadError(
                f"{len(failures)} of {len(results)} dataset files could not be pulled:\n{listed}"
            )
        return results

    def _pull_one(self, entry: DatasetFile, dest: Path | None) -> PullResult:
        if dest is not None:
            target = dest / entry.key
            if target.is_file():
                self._verify(entry, target)
                return PullResult(entry.key, "present", str(target))
            return PullResult(entry.key, "downloaded", str(self._download(entry, dest)))
        found = self._find(entry.key)
        if found is not None:
            self._verify(entry, found[1])
            return PullResult(entry.key, "present", str(found[1]))
        return PullResult(entry.key, "downloaded", str(self._download(entry, self.cache_dir)))
