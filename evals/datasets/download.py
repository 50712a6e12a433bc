"""Streaming, verified, atomic download of one file (used by :mod:`evals.datasets.sources`).

The body is hashed while it streams into a temporary file next to the target; only a file whose
sha256 equals the expected one is renamed into place, so the target is either absent or correct.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from schemas.errors import DataError

_CHUNK = 1 << 20


class DownloadError(DataError):
    """A download failed: HTTP error, network error, wrong content or a local write error."""

    def __init__(self, reason: str, *, fix: str = "") -> None:
        super().__init__(f"{reason}. {fix}".strip() if fix else reason)
        self.reason = reason
        """What went wrong, without the fix."""


@contextmanager
def progress_bar(enabled: bool, label: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A function that advances a rich progress bar on stderr (a no-op when disabled)."""
    if not enabled:
        yield lambda advance: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=Console(stderr=True),
    )
    task = progress.add_task(label, total=total)
    with progress:
        yield lambda advance: progress.update(task, advance=advance)


def download_verified(
    url: str, target: Path, sha256: str, *, label: str, size: int | None = None, progress: bool = False, fix: str = ""
) -> Path:
    """Download ``url`` to ``target`` if and only if its content has sha256 ``sha256``.

    Raises :class:`DownloadError` (naming ``label``, the URL, what went wrong, then ``fix``); nothing
    is left behind on failure.
    """
    import httpx

    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    temp = Path(temp_name)
    digest = hashlib.sha256()
    try:
        with (
            os.fdopen(descriptor, "wb") as handle,
            httpx.stream("GET", url, follow_redirects=True, timeout=httpx.Timeout(60.0)) as response,
        ):
            if response.status_code != 200:
                raise DownloadError(f"downloading {label} from {url} failed: HTTP {response.status_code}", fix=fix)
            total = int(response.headers.get("content-length") or 0) or size
            with progress_bar(progress, label, total) as advance:
                for chunk in response.iter_bytes(_CHUNK):
                    digest.update(chunk)
                    handle.write(chunk)
                    advance(len(chunk))
        actual = digest.hexdigest()
        if actual != sha256:
            raise DownloadError(
                f"downloaded {label} from {url} but its sha256 is {actual}, expected {sha256}: "
                "the server sent a different file, and nothing was kept",
                fix=fix,
            )
        os.chmod(temp, 0o644)  # mkstemp makes it private; a shared cache must be readable by others
        os.replace(temp, target)
    except httpx.HTTPError as exc:
        raise DownloadError(f"downloading {label} from {url} failed: {exc}", fix=fix) from exc
    except OSError as exc:
        raise DownloadError(
            f"cannot write {label} to {target.parent}: {exc.strerror or exc}",
            fix="Fix: free disk space or choose another cache (MORALSCOPE_CACHE_DIR).",
        ) from exc
    finally:
        temp.unlink(missing_ok=True)
    return target
