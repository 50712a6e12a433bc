"""Readers of JSON-lines and CSV/TSV dataset files whose errors name file:line."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from evals.datasets.errors import DatasetFormatError


def iter_jsonl(path: Path, *, limit: int | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each line of a JSON-lines file; a bad line raises naming file:line."""
    with path.open("r", encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if limit is not None and number > limit:
                return
            if not line.strip():
                raise DatasetFormatError(f"{path}:{number}: empty line in a JSON-lines file")
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetFormatError(f"{path}:{number}: not valid JSON ({exc.msg} at column {exc.colno})") from exc
            if not isinstance(value, dict):
                raise DatasetFormatError(f"{path}:{number}: expected a JSON object, got {type(value).__name__}")
            yield number, value


def read_table(path: Path, *, delimiter: str, columns: Sequence[str]) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) for each data row of a CSV/TSV file whose header must hold ``columns``.

    Tab-separated files are read without quote processing (a ``"`` is text), as TSV files are written.
    """
    with path.open("r", encoding="utf-8", newline="") as handle:
        if delimiter == "\t":
            reader = csv.reader(handle, delimiter=delimiter, quoting=csv.QUOTE_NONE)
        else:
            reader = csv.reader(handle, delimiter=delimiter)
        header = next(reader, None)
        if header is None:
            raise DatasetFormatError(f"{path}:1: empty file, expected a header with {', '.join(columns)}")
        missing = [c for c in columns if c not in header]
        if missing:
            raise DatasetFormatError(f"{path}:1: header lacks column(s) {', '.join(map(repr, missing))}; got {header}")
        rows = []
        for values in reader:
            number = reader.line_num
            if len(values) != len(header):
                raise DatasetFormatError(
                    f"{path}:{number}: expected {len(header)} fields ({delimiter!r}-separated), got {len(values)}"
                )
            rows.append((number, dict(zip(header, values, strict=True))))
        return rows
