"""Result files: atomic writes, ordered concatenation, non-local filesystems."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pytest

from schemas.errors import InvalidInputError
from service.results import JobFiles, normalize_results_root

SCHEMA = pa.schema([pa.field("x", pa.int64(), nullable=False)])


def test_writes_leave_no_temporary_files_and_replace_atomically(tmp_path: Path) -> None:
    files = JobFiles(str(tmp_path / "job"))
    files.write_parquet("parts/a.parquet", pa.table({"x": [1, 2]}, schema=SCHEMA))
    files.write_parquet("parts/a.parquet", pa.table({"x": [3]}, schema=SCHEMA))  # rewritten after a restart
    files.write_text("spec.json", "{}\n")
    assert sorted(p.name for p in (tmp_path / "job" / "parts").iterdir()) == ["a.parquet"]
    assert files.read_parquet("parts/a.parquet").column("x").to_pylist() == [3]
    assert files.read_text("spec.json") == "{}\n"
    assert files.exists("spec.json")
    assert not files.exists("nope.json")


def test_concat_keeps_the_given_order_and_removes_parts(tmp_path: Path) -> None:
    files = JobFiles(str(tmp_path / "job"))
    for name, values in (("b", [3, 4]), ("a", [1, 2])):
        files.write_parquet(f"parts/{name}.parquet", pa.table({"x": values}, schema=SCHEMA))
    rows = files.concat_parquet("all.parquet", SCHEMA, ["parts/b.parquet", "parts/a.parquet"])
    assert rows == 4
    assert files.read_parquet("all.parquet").column("x").to_pylist() == [3, 4, 1, 2]
    files.remove_tree("parts")
    files.remove_tree("parts")  # already gone: no error
    assert not (tmp_path / "job" / "parts").exists()
    assert b"".join(files.iter_bytes("all.parquet", chunk_size=16)) == (tmp_path / "job" / "all.parquet").read_bytes()


def test_any_pyarrow_filesystem_works_through_the_same_calls(tmp_path: Path) -> None:
    remote = pafs.SubTreeFileSystem(str(tmp_path), pafs.LocalFileSystem())  # stands in for s3/gcs
    files = JobFiles("bucket/job", filesystem=remote)
    files.write_parquet("samples.parquet", pa.table({"x": [5]}, schema=SCHEMA))
    assert files.local_path("samples.parquet") is None  # served by streaming, not from a path
    assert (tmp_path / "bucket" / "job" / "samples.parquet").is_file()
    assert files.uri("samples.parquet") == "bucket/job/samples.parquet"


def test_file_uris_and_relative_roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert normalize_results_root("out") == str(tmp_path / "out")
    assert normalize_results_root("s3://bucket/prefix/") == "s3://bucket/prefix"
    files = JobFiles(f"file://{tmp_path}/job")
    files.write_text("a.txt", "hi")
    assert (tmp_path / "job" / "a.txt").read_text() == "hi"
    with pytest.raises(InvalidInputError, match="MORALSCOPE_RESULTS_URI"):
        JobFiles("nosuchscheme://x/y")


def test_result_tables_read_back_with_their_exact_schema(tmp_path: Path) -> None:
    from schemas.tables import SAMPLES_SCHEMA

    files = JobFiles(str(tmp_path / "job"))
    files.write_parquet("parts/0.parquet", SAMPLES_SCHEMA.empty_table())
    files.concat_parquet("samples.parquet", SAMPLES_SCHEMA, ["parts/0.parquet"])
    for name in ("parts/0.parquet", "samples.parquet"):
        assert files.read_parquet(name).schema.equals(SAMPLES_SCHEMA, check_metadata=True)
