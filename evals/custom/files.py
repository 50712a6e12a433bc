"""Reading a custom benchmark's data file: where it may come from, its sha256, and its rows.

A spec's ``data`` is one of

- ``upload:<sha256>.<ext>``: a file uploaded to the server (``POST /v1/uploads``), found in the
  uploads folder :class:`DataAccess` names (under the server's results root, shared by every replica);
- a pyarrow filesystem URI (``s3://bucket/key.csv``, ``gs://…``, ``hdfs://…``; ``file://`` is a local path);
- a local path.

Whether a path or URI may be read at all is the caller's policy (:attr:`DataAccess.check`: a server
refuses what its operator does not allow; ``moralscope run`` reads anything). The file is read whole
(at most :attr:`DataAccess.max_bytes`), hashed, checked against a pinned sha256, and parsed: JSON lines
(one object per line), CSV (a header row; every value is text) or Parquet. Every error is a
:class:`~schemas.errors.DataError` naming the file (as the spec wrote it), and the row and column where
one is at fault.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from schemas.custom import UPLOAD_SCHEME
from schemas.errors import DataError, InvalidInputError

UPLOAD_ID = re.compile(r"^[0-9a-f]{64}\.(jsonl|csv|parquet)$")
"""An uploaded file's id: its sha256 and its format."""
_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
_CHUNK = 1 << 20


@dataclass(frozen=True)
class DataAccess:
    """Where custom data files may be read from: the caller's policy, handed to ``evals``."""

    uploads: str | None = None
    """The folder (or URI) holding this caller's uploads; None: ``upload:`` references cannot be resolved."""
    check: Callable[[str, str], None] | None = None
    """Called with (data, field) before anything is opened; raises when the source is not allowed."""
    max_bytes: int | None = None
    """Largest file read; None: no limit."""


LOCAL_ACCESS = DataAccess()
"""Everything on this machine (the CLI, ``moralscope run``): the user's own files."""


@dataclass(frozen=True)
class DataRow:
    """One data row: its 1-based number, and the line it starts on (text formats)."""

    number: int
    line: int | None
    values: dict[str, Any]


@dataclass(frozen=True)
class DataFile:
    """A data file, read and verified."""

    source: str
    """As the spec names it."""
    location: str
    """Where it was read (a path or URI)."""
    format: str
    sha256: str
    size: int
    columns: tuple[str, ...]
    rows: list[DataRow] = field(repr=False)

    def where(self, row: DataRow, column: str | None = None) -> str:
        """``file: row N (line L), column 'c'`` for messages."""
        line = f" (line {row.line})" if row.line is not None and row.line != row.number else ""
        return f"{self.source}: row {row.number}{line}" + (f", column {column!r}" if column else "")


def data_format(source: str, given: str | None) -> str:
    """The file's format: ``given``, else from its name's extension."""
    if given is not None:
        return given
    suffix = PurePosixPath(source.split("?", 1)[0]).suffix.lower()
    if suffix in _FORMATS:
        return _FORMATS[suffix]
    raise InvalidInputError(
        f"cannot tell the format of {source!r} from its name; name the file .jsonl, .csv or .parquet, or set `format`",
        field="format",
    )


def _open(source: str, access: DataAccess) -> tuple[pafs.FileSystem, str, str]:
    """(filesystem, path, location shown) of a data source."""
    if source.startswith(UPLOAD_SCHEME):
        upload = source[len(UPLOAD_SCHEME) :]
        if not UPLOAD_ID.fullmatch(upload):
            raise InvalidInputError(
                f"{source!r} is not an upload reference: use the `ref` that POST /v1/uploads returned "
                "(upload:<sha256>.<jsonl|csv|parquet>)",
                field="data",
            )
        if access.uploads is None:
            raise InvalidInputError(
                f"{source!r} names a file uploaded to a moralscope server; here, name the local file instead",
                field="data",
            )
        location = f"{access.uploads.rstrip('/')}/{upload}"
    else:
        location = source
    if "://" in location and not location.startswith("file://"):
        try:
            filesystem, path = pafs.FileSystem.from_uri(location)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
            raise DataError(f"cannot open data file {source}: {exc}") from exc
        return filesystem, path, location
    local = Path(location.removeprefix("file://")).expanduser().absolute()
    return pafs.LocalFileSystem(), str(local), str(local)


def _read_bytes(filesystem: pafs.FileSystem, path: str, source: str, max_bytes: int | None) -> bytes:
    try:
        with filesystem.open_input_stream(path) as stream:
            chunks, size = [], 0
            while chunk := stream.read(_CHUNK):
                chunks.append(bytes(chunk))
                size += len(chunk)
                if max_bytes is not None and size > max_bytes:
                    raise DataError(
                        f"data file {source} is larger than {max_bytes:,} bytes, the most this server reads "
                        "(MORALSCOPE_MAX_UPLOAD_BYTES)"
                    )
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"cannot read data file {source}: {exc}") from exc
    return b"".join(chunks)


def read_data_file(source: str, *, fmt: str | None, sha256: str | None, access: DataAccess, field: str) -> DataFile:
    """Read, hash and parse a data file (see the module docstring); ``field`` is the spec field naming it."""
    if access.check is not None:
        access.check(source, field)
    kind = data_format(source, fmt)
    filesystem, path, location = _open(source, access)
    raw = _read_bytes(filesystem, path, source, access.max_bytes)
    digest = hashlib.sha256(raw).hexdigest()
    if sha256 is not None and digest != sha256:
        raise DataError(
            f"data file {source} has sha256 {digest}, but the spec pins {sha256}: the file changed since the spec "
            "was written; point the spec at the intended file, or update its sha256"
        )
    columns, rows = _PARSERS[kind](raw, source)
    return DataFile(source, location, kind, digest, len(raw), columns, rows)


def _text(raw: bytes, source: str) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"data file {source} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None


def _parse_jsonl(raw: bytes, source: str) -> tuple[tuple[str, ...], list[DataRow]]:
    rows: list[DataRow] = []
    columns: dict[str, None] = {}
    for line_number, line in enumerate(_text(raw, source).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"{source}: line {line_number} is not valid JSON ({exc.msg} at column {exc.colno})"
            ) from None
        if not isinstance(value, dict):
            raise DataError(f"{source}: line {line_number} must be a JSON object, got {type(value).__name__}")
        columns.update(dict.fromkeys(value))
        rows.append(DataRow(len(rows) + 1, line_number, value))
    return tuple(columns), rows


def _parse_csv(raw: bytes, source: str) -> tuple[tuple[str, ...], list[DataRow]]:
    reader = csv.reader(io.StringIO(_text(raw, source), newline=""))
    header = next(reader, None)
    if not header:
        raise DataError(f"{source}: empty file; a CSV file needs a header row naming its columns")
    if len(set(header)) != len(header):
        raise DataError(f"{source}: the header names a column twice ({header})")
    rows: list[DataRow] = []
    line = reader.line_num + 1
    for values in reader:
        if values and len(values) != len(header):
            raise DataError(
                f"{source}: row {len(rows) + 1} (line {line}) has {len(values)} fields, the header {len(header)}"
            )
        if values:
            rows.append(DataRow(len(rows) + 1, line, dict(zip(header, values, strict=True))))
        line = reader.line_num + 1
    return tuple(header), rows


def _parse_parquet(raw: bytes, source: str) -> tuple[tuple[str, ...], list[DataRow]]:
    try:
        table = pq.read_table(pa.BufferReader(raw))
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{source} is not a readable Parquet file: {exc}") from None
    return tuple(table.column_names), [DataRow(i, None, values) for i, values in enumerate(table.to_pylist(), 1)]


_PARSERS: dict[str, Callable[[bytes, str], tuple[tuple[str, ...], list[DataRow]]]] = {
    "jsonl": _parse_jsonl,
    "csv": _parse_csv,
    "parquet": _parse_parquet,
}
