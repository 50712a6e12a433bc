"""The pyarrow filesystem behind a results location: a local folder, S3 (or an S3-compatible server), any
other pyarrow filesystem URI (``gs://``, ``hdfs://``, ...).

**S3.** pyarrow's ``S3FileSystem`` finds credentials the AWS SDK way (``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``, ``AWS_PROFILE``, web identity as with EKS IRSA, the
instance metadata) and the region from ``AWS_REGION`` / ``AWS_DEFAULT_REGION``, but (pyarrow 26) not
the endpoint of an S3-compatible server: that is read here, from ``AWS_ENDPOINT_URL_S3`` or else
``AWS_ENDPOINT_URL`` (the AWS CLI's variables), e.g. ``http://minio.storage:9000``. Without a region
and an endpoint, the bucket's region is looked up once. Parameters in the URI itself
(``s3://bucket/prefix?endpoint_override=host:port&scheme=http``) are pyarrow's and take precedence.
Filesystems are cached per bucket and configuration: one client serves every job.

**Atomic files.** :func:`writes_atomically` tells whether a file written straight to its final name
appears only once complete: true for object stores (an S3 PUT or multipart upload becomes visible on
completion; a killed writer leaves nothing), false for filesystems with real files, where writers use
a temporary name and a rename.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.fs as pafs

from schemas.errors import InvalidInputError

_OBJECT_STORES: tuple[type, ...] = tuple(
    cls for cls in (getattr(pafs, "S3FileSystem", None), getattr(pafs, "GcsFileSystem", None)) if cls is not None
)


def s3_endpoint() -> tuple[str, str] | None:
    """(host[:port], scheme) of the S3 endpoint the AWS variables name, or None for AWS itself."""
    url = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if not url:
        return None
    parts = urlsplit(url if "://" in url else f"https://{url}")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidInputError(
            f"AWS_ENDPOINT_URL(_S3)={url!r} is not an http(s)://host[:port] URL", field="AWS_ENDPOINT_URL"
        )
    return parts.netloc, parts.scheme


@lru_cache(maxsize=64)
def _s3(bucket: str, endpoint: tuple[str, str] | None, region: str | None) -> pafs.FileSystem:
    if endpoint is not None:
        return pafs.S3FileSystem(endpoint_override=endpoint[0], scheme=endpoint[1], region=region)
    if region is None:
        try:
            region = pafs.resolve_s3_region(bucket)
        except (OSError, pa.ArrowException):  # no permission to ask: leave it to the SDK's defaults
            region = None
    return pafs.S3FileSystem(region=region)


def filesystem_for(location: str) -> tuple[pafs.FileSystem, str]:
    """The filesystem holding ``location`` and the location's path on it (no trailing slash)."""
    if "://" not in location:
        return pafs.LocalFileSystem(), str(Path(location).expanduser().resolve())
    parts = urlsplit(location)
    try:
        if parts.scheme == "s3" and not parts.query and parts.netloc:
            region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None
            filesystem = _s3(parts.netloc, s3_endpoint(), region)
            return filesystem, f"{parts.netloc}{parts.path}".rstrip("/")
        filesystem, path = pafs.FileSystem.from_uri(location)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
        raise InvalidInputError(
            f"cannot open results location {location!r}: {exc}; set MORALSCOPE_RESULTS_URI to a local folder "
            "or a pyarrow filesystem URI (s3://bucket/prefix, gs://bucket/prefix, hdfs://...)",
            field="results_uri",
        ) from exc
    return filesystem, path.rstrip("/")


def writes_atomically(filesystem: pafs.FileSystem) -> bool:
    """Whether a file written to its final name is invisible until complete (see the module docstring)."""
    return isinstance(filesystem, _OBJECT_STORES)
