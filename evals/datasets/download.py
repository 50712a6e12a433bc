"""Fetching a registered file into a folder: downloaded and verified by pooch, once across processes.

:func:`registry_for` describes the files as a :class:`pooch.Pooch` (each key's URL and ``sha256``);
:func:`fetch` downloads one into the pooch's folder. pooch streams it into a temporary file next to the
target, checks its sha256 and only then renames it into place, so the target is either absent or
correct, and it never replaces a file already there (``allow_updates=False``: a copy found corrupt is
the caller's error to report, not something to overwrite). A file lock per key (under ``<root>/.locks/``;
lock files stay, as removing one races a waiting process) makes concurrent fetches of the same file —
two workers, two ``moralscope data pull`` — download it once: the others wait, then find it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import filelock
import pooch
import requests

from schemas.errors import DataError

LOCKS = ".locks"
"""The folder (in the root the files go to) of the lock files, one per key."""
_CHUNK = 1 << 16
_TIMEOUT_SECONDS = 60.0


class DownloadError(DataError):
    """A download failed: HTTP error, network error, wrong content or a local write error."""

    def __init__(self, reason: str, *, fix: str = "") -> None:
        super().__init__(f"{reason}. {fix}".strip() if fix else reason)
        self.reason = reason
        """What went wrong, without the fix."""


def registry_for(root: Path, files: Mapping[str, tuple[str, str]], *, retries: int) -> Any:
    """A pooch over ``root`` for ``files`` (key → (URL, sha256)); a failed download is tried ``retries`` more times."""
    return pooch.create(
        path=root,
        base_url="",
        registry={key: f"sha256:{sha256}" for key, (_, sha256) in files.items()},
        urls={key: url for key, (url, _) in files.items()},
        retry_if_failed=retries,
        allow_updates=False,
    )


class _RichBar:
    """The progress-bar object pooch drives (``total``, ``update``, ``reset``, ``close``), drawn by rich on stderr."""

    def __init__(self, label: str) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=Console(stderr=True),
        )
        self._task = self._progress.add_task(label, total=None)
        self._started = False

    @property
    def total(self) -> float | None:
        return self._progress.tasks[0].total

    @total.setter
    def total(self, value: int) -> None:
        """Set by pooch once the response's headers are in: the bar appears then."""
        self._progress.update(self._task, total=value or None)
        if not self._started:
            self._progress.start()
            self._started = True

    def update(self, advance: int) -> None:
        self._progress.update(self._task, advance=advance)

    def reset(self) -> None:
        self._progress.reset(self._task, total=self.total)

    def close(self) -> None:
        if self._started:
            self._progress.stop()


class _Refused(Exception):
    """The server refused the request (a 4xx other than 408/429): trying again would not help."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


class _NotingDownloader:
    """pooch's HTTP downloader that also notes the sha256 of what it received (for a mismatch's message)
    and stops pooch from retrying a request the server refused (404 and the like)."""

    def __init__(self) -> None:
        self.received: str | None = None
        self._bar: _RichBar | None = None

    @contextlib.contextmanager
    def showing(self, label: str | None) -> Iterator[None]:
        """Draw a progress bar labelled ``label`` while downloading (none when None)."""
        self._bar = _RichBar(label) if label is not None else None
        try:
            yield
        finally:
            if self._bar is not None:
                self._bar.close()
            self._bar = None

    def __call__(self, url: str, output_file: str, pup: Any, check_only: bool = False) -> Any:
        http = pooch.HTTPDownloader(progressbar=self._bar or False, chunk_size=_CHUNK, timeout=_TIMEOUT_SECONDS)
        self.received = None
        try:
            result = http(url, output_file, pup, check_only=check_only)
        except requests.exceptions.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else 0
            if 400 <= status < 500 and status not in (408, 429):
                raise _Refused(status) from exc  # not a RequestException: pooch does not retry it
            raise
        if not check_only:
            with open(output_file, "rb") as handle:
                self.received = hashlib.file_digest(handle, "sha256").hexdigest()
        return result


def fetch(pup: Any, key: str, *, sha256: str, progress: bool = False, fix: str = "") -> Path:
    """Download ``key`` into ``pup``'s folder unless it is there (another process may just have fetched it).

    The path is returned unverified when the file was already there: the caller verifies it. Raises
    :class:`DownloadError` naming the file, the URL, what went wrong and ``fix``; nothing is left behind.
    """
    root = Path(pup.abspath)
    target, lock = root / key, root / LOCKS / f"{key}.lock"
    url = pup.get_url(key)
    downloader = _NotingDownloader()
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        with filelock.FileLock(lock):
            if target.is_file():
                return target
            with downloader.showing(key if progress else None):
                pup.fetch(key, downloader=downloader)
            os.chmod(target, 0o644)  # pooch's temporary file is private; a shared cache must be readable
    except _Refused as exc:
        raise DownloadError(f"downloading {key} from {url} failed: HTTP {exc.status}", fix=fix) from exc
    except requests.exceptions.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "error"
        raise DownloadError(f"downloading {key} from {url} failed: HTTP {status}", fix=fix) from exc
    except requests.exceptions.RequestException as exc:
        raise DownloadError(f"downloading {key} from {url} failed: {exc}", fix=fix) from exc
    except ValueError as exc:
        if downloader.received is None or downloader.received == sha256:
            raise DownloadError(f"downloading {key} from {url} failed: {exc}", fix=fix) from exc
        raise DownloadError(
            f"downloaded {key} from {url} but its sha256 is {downloader.received}, expected {sha256}: "
            "the server sent a different file, and nothing was kept",
            fix=fix,
        ) from exc
    except OSError as exc:
        raise DownloadError(
            f"cannot write {key} to {target.parent}: {exc.strerror or exc}",
            fix="Fix: free disk space or choose another cache (MORALSCOPE_CACHE_DIR).",
        ) from exc
    return target
