"""Uploaded data files for custom benchmarks (``POST /v1/uploads``), stored with the job results.

An upload is streamed to ``<results root>/uploads/<owner>/`` (:func:`service.access.uploads_location`: a
local folder or any pyarrow filesystem URI, so every replica sees it), hashed as it arrives, and kept as
``<sha256>.<format>`` — content-addressed, so uploading the same file twice stores it once. It is written
under a temporary name and renamed, and refused (413) as soon as it exceeds ``max_upload_bytes``. A spec
names it as ``data: upload:<sha256>.<format>``; only its owner's jobs resolve it.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import AsyncIterator

from starlette.concurrency import run_in_threadpool

from evals.custom.files import data_format
from schemas.errors import InvalidInputError, LimitExceededError
from schemas.uploads import UploadView
from service.access import uploads_location
from service.results import JobFiles
from service.settings import Settings


async def store_upload(
    *,
    settings: Settings,
    owner: str,
    filename: str,
    fmt: str | None,
    chunks: AsyncIterator[bytes],
    declared_size: int | None,
) -> UploadView:
    """Stream ``chunks`` into the owner's uploads; the reference to name in a spec."""
    kind = data_format(filename, fmt)
    limit = settings.max_upload_bytes
    if declared_size is not None and declared_size > limit:
        raise _too_large(limit)
    files = JobFiles(uploads_location(settings, owner))
    await run_in_threadpool(files.fs.create_dir, files.root, recursive=True)
    incoming_name = f".incoming-{secrets.token_hex(8)}"
    incoming = files.path(incoming_name)
    digest, size = hashlib.sha256(), 0
    sink = await run_in_threadpool(files.fs.open_output_stream, incoming)
    try:
        try:
            async for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit)
                digest.update(chunk)
                await run_in_threadpool(sink.write, chunk)
        finally:
            await run_in_threadpool(sink.close)
        if size == 0:
            raise InvalidInputError("the upload is empty; send the file's bytes as the request body", field="body")
        name = f"{digest.hexdigest()}.{kind}"
        if files.exists(name):
            await run_in_threadpool(files.fs.delete_file, incoming)
        else:
            await run_in_threadpool(files.fs.move, incoming, files.path(name))
    except BaseException:
        if files.exists(incoming_name):
            await run_in_threadpool(files.fs.delete_file, incoming)
        raise
    return UploadView(ref=f"upload:{name}", sha256=digest.hexdigest(), bytes=size, format=kind, filename=filename)


def _too_large(limit: int) -> LimitExceededError:
    return LimitExceededError(
        f"the upload is larger than {limit:,} bytes (MORALSCOPE_MAX_UPLOAD_BYTES); split the data or ask the "
        "operator for a larger limit",
        field="body",
        http_status=413,
    )
