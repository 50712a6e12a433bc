"""An S3-compatible server on 127.0.0.1 for tests and benchmarks: moto's standalone server, in a subprocess.

:meth:`MotoS3Server.environment` gives the variables a moralscope process needs to use it (the
endpoint, a region and dummy credentials: moto accepts any); :meth:`MotoS3Server.create_bucket`
makes a bucket.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pyarrow.fs as pafs

from tests.support.postgres import free_port

REGION = "us-east-1"


class MotoS3Server:
    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(tempfile.mkstemp(prefix="moralscope-moto-", suffix=".log")[1])
        self.process: subprocess.Popen[bytes] | None = None

    def environment(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "moralscope-test",
            "AWS_SECRET_ACCESS_KEY": "moralscope-test-secret",
        }

    def start(self, timeout: float = 60) -> MotoS3Server:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.environment()},
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto server exited with {self.process.returncode}:\n{self.log_path.read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(f"{self.endpoint}/moto-api/", timeout=2)
                return self
            time.sleep(0.2)
        raise RuntimeError(f"moto server did not answer within {timeout}s")

    def filesystem(self) -> pafs.S3FileSystem:
        env = self.environment()
        return pafs.S3FileSystem(
            access_key=env["AWS_ACCESS_KEY_ID"],
            secret_key=env["AWS_SECRET_ACCESS_KEY"],
            region=REGION,
            scheme="http",
            endpoint_override=f"127.0.0.1:{self.port}",
            allow_bucket_creation=True,
        )

    def create_bucket(self, name: str) -> str:
        """Create a bucket; returns ``s3://name``."""
        self.filesystem().create_dir(name)
        return f"s3://{name}"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(15)
        self.log_path.unlink(missing_ok=True)

    def __enter__(self) -> MotoS3Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
