"""Result files on S3: a real S3-compatible server on 127.0.0.1 (moto's), configured the AWS way.

The endpoint comes from AWS_ENDPOINT_URL (which pyarrow does not read itself), the region and the
credentials from AWS_REGION and AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pyarrow as pa
import pyarrow.fs as pafs
import pytest

from schemas.errors import InvalidInputError
from service.filesystems import writes_atomically
from service.results import JobFiles
from tests.support.s3 import MotoS3Server

SCHEMA = pa.schema([pa.field("x", pa.int64(), nullable=False)])


@pytest.fixture
def bucket(s3_server: MotoS3Server, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> str:
    """A fresh bucket, with the AWS variables pointing at the server."""
    for name, value in s3_server.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    name = request.node.name.replace("_", "-").lower()[:50]
    return s3_server.create_bucket(name)


def _keys(s3_server: MotoS3Server, prefix: str) -> list[str]:
    infos = s3_server.filesystem().get_file_info(pafs.FileSelector(prefix, recursive=True))
    return sorted(i.path for i in infos if i.type == pafs.FileType.File)


def test_job_files_on_s3_are_written_straight_to_their_keys(bucket: str, s3_server: MotoS3Server) -> None:
    files = JobFiles(f"{bucket}/results/job_1")
    assert writes_atomically(files.fs)
    assert files.root == f"{bucket.removeprefix('s3://')}/results/job_1"
    files.write_parquet("parts/b.parquet", pa.table({"x": [3, 4]}, schema=SCHEMA))
    files.write_parquet("parts/a.parquet", pa.table({"x": [0]}, schema=SCHEMA))
    files.write_parquet("parts/a.parquet", pa.table({"x": [1, 2]}, schema=SCHEMA))  # rewritten after a restart
    files.write_text("spec.json", '{"a": 1}\n')
    prefix = f"{bucket.removeprefix('s3://')}/results/job_1"
    # no temporary objects, no copies: just the files
    assert _keys(s3_server, prefix) == [f"{prefix}/{n}" for n in ("parts/a.parquet", "parts/b.parquet", "spec.json")]
    assert files.concat_parquet("samples.parquet", SCHEMA, ["parts/a.parquet", "parts/b.parquet"]) == 4
    assert files.read_parquet("samples.parquet").column("x").to_pylist() == [1, 2, 3, 4]
    assert files.read_text("spec.json") == '{"a": 1}\n'
    assert files.exists("samples.parquet")
    assert not files.exists("metrics.parquet")
    assert files.size("spec.json") == len('{"a": 1}\n')
    assert files.local_path("samples.parquet") is None  # the API streams it
    streamed = b"".join(files.iter_bytes("samples.parquet", chunk_size=64))
    with s3_server.filesystem().open_input_stream(f"{prefix}/samples.parquet") as source:
        assert streamed == source.read()
    files.remove_tree("parts")
    files.remove_tree("parts")  # already gone: no error
    assert _keys(s3_server, prefix) == [f"{prefix}/samples.parquet", f"{prefix}/spec.json"]


def test_a_writer_killed_mid_upload_leaves_no_object(bucket: str, s3_server: MotoS3Server) -> None:
    # a large file goes up as a multipart upload, which S3 shows only once it is completed
    location = f"{bucket}/results/job_2"
    script = textwrap.dedent(
        f"""
        import sys, time
        from service.results import JobFiles
        files = JobFiles({location!r})
        stream = files.fs.open_output_stream(files.path("samples.parquet"))
        for _ in range(3):
            stream.write(b"x" * (6 << 20))
        print("written", flush=True)
        time.sleep(120)
        """
    )
    writer = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert writer.stdout is not None
    assert writer.stdout.readline().strip() == "written"
    writer.kill()
    writer.wait(30)
    assert not JobFiles(location).exists("samples.parquet")
    assert _keys(s3_server, bucket.removeprefix("s3://")) == []


def test_the_endpoint_must_be_a_url(bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "ftp://example.org")
    with pytest.raises(InvalidInputError, match="AWS_ENDPOINT_URL"):
        JobFiles(f"{bucket}/x")
