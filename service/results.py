"""Result files of a job under its location: a local folder or any pyarrow filesystem URI.

Layout of ``<results_uri>/<job id>/``::

    samples.parquet      SAMPLES_SCHEMA, zstd, rows in the job's deterministic order
    metrics.parquet      METRICS_SCHEMA
    spec.json            the spec with resolved versions (packages, models, datasets) and prompt digests
    report.html          the metrics for people: figures and tables (service.report)
    parts/               while the job runs: one Parquet part per finished shard (removed at the end)

A reader (or a restarted job) sees either the whole file or none of it: on object stores (S3, GCS)
a file is written straight to its key, which appears only once the upload completes (a writer killed
mid-way leaves nothing); elsewhere it is written under a temporary name and renamed. A part is
recorded in the job store only after it is written, and results are served only once the job has
completed, so a file is never read half-written. Which filesystem serves a location (and how S3 is
configured from the AWS variables) is :mod:`service.filesystems`.
"""

from __future__ import annotations

import os
import posixpath
import secrets
from collections.abc import Iterator, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from schemas.errors import UnavailableError
from service.filesystems import filesystem_for, writes_atomically

PARQUET_COMPRESSION = "zstd"
PARQUET_OPTIONS = {"compression": PARQUET_COMPRESSION, "use_compliant_nested_type": False}
"""zstd; list children keep Arrow's name (``item``) so that a file read back equals SAMPLES_SCHEMA exactly
(every Parquet reader accepts either name)."""


def normalize_results_root(uri: str) -> str:
    """A results root as stored with jobs: URIs unchanged, local paths made absolute."""
    if "://" in uri:
        return uri.rstrip("/")
    return str(Path(uri).expanduser().resolve())


class JobFiles:
    """Reads and writes the files of one job; paths are relative to the job's location."""

    def __init__(self, location: str, *, filesystem: pafs.FileSystem | None = None) -> None:
        self.location = location.rstrip("/")
        if filesystem is None:
            self.fs, self.root = filesystem_for(self.location)
        else:
            self.fs, self.root = filesystem, self.location
        self._direct = writes_atomically(self.fs)

    def path(self, relative: str) -> str:
        """The filesystem path of a file of the job."""
        return posixpath.join(self.root, relative) if relative else self.root

    def uri(self, relative: str) -> str:
        """The URI users see for a file of the job."""
        return f"{self.location}/{relative}"

    def exists(self, relative: str) -> bool:
        try:
            return bool(self.fs.get_file_info(self.path(relative)).type == pafs.FileType.File)
        except OSError as exc:
            raise UnavailableError(f"cannot reach {self.uri(relative)}: {exc}") from exc

    def size(self, relative: str) -> int:
        return int(self.fs.get_file_info(self.path(relative)).size)

    def _temporary(self, relative: str) -> str:
        """Where to write ``relative``: its final path on an object store, else a temporary sibling."""
        final = self.path(relative)
        if self._direct:
            return final
        self.fs.create_dir(posixpath.dirname(final), recursive=True)
        return f"{final}.tmp-{secrets.token_hex(4)}"

    def _commit(self, temporary: str, relative: str) -> None:
        if temporary != self.path(relative):
            self.fs.move(temporary, self.path(relative))

    def write_parquet(self, relative: str, table: pa.Table) -> None:
        """Write a Parquet file atomically."""
        temporary = self._temporary(relative)
        pq.write_table(table, temporary, filesystem=self.fs, **PARQUET_OPTIONS)
        self._commit(temporary, relative)

    def concat_parquet(self, relative: str, schema: pa.Schema, parts: Sequence[str]) -> int:
        """Write the parts' rows, in the given order, as one Parquet file (atomically); returns rows."""
        temporary = self._temporary(relative)
        rows = 0
        with (
            self.fs.open_output_stream(temporary) as sink,
            pq.ParquetWriter(sink, schema, **PARQUET_OPTIONS) as writer,
        ):
            for part in parts:
                table = self.read_parquet(part).select(schema.names).cast(schema)
                writer.write_table(table)
                rows += table.num_rows
        self._commit(temporary, relative)
        return rows

    def read_parquet(self, relative: str, *, columns: Sequence[str] | None = None) -> pa.Table:
        return pq.read_table(self.path(relative), filesystem=self.fs, columns=columns)

    def write_text(self, relative: str, text: str) -> None:
        """Write a text file atomically."""
        temporary = self._temporary(relative)
        with self.fs.open_output_stream(temporary) as sink:
            sink.write(text.encode())
        self._commit(temporary, relative)

    def read_text(self, relative: str) -> str:
        with self.fs.open_input_stream(self.path(relative)) as source:
            return bytes(source.read()).decode()

    def iter_bytes(self, relative: str, *, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """A file's content in chunks (for streaming it over HTTP)."""
        with self.fs.open_input_stream(self.path(relative)) as source:
            while chunk := source.read(chunk_size):
                yield bytes(chunk)

    def remove_tree(self, relative: str) -> None:
        """Delete a folder of the job and everything in it (no error when it does not exist)."""
        path = self.path(relative)
        if self.fs.get_file_info(path).type == pafs.FileType.NotFound:
            return
        self.fs.delete_dir(path)

    def local_path(self, relative: str) -> str | None:
        """The file's path on local disk, when the job's location is local."""
        if isinstance(self.fs, pafs.LocalFileSystem):
            return os.fspath(self.path(relative))
        return None
