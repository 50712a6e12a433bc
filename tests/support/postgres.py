"""A throw-away PostgreSQL server: ``initdb`` + ``pg_ctl`` in a temporary folder, on a free port.

Uses the server binaries of Debian's ``postgresql`` package (``/usr/lib/postgresql/<version>/bin``;
``make test`` installs it when missing). PostgreSQL refuses to run as root, so under root the server
runs as the ``postgres`` system user (which the package creates). No system service is involved; the
folder is deleted when the server stops. Durability is switched off (``fsync=off``): this is for tests.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg

INSTALL_HINT = "install Debian's postgresql package (`apt-get install postgresql`; `make test` does it)"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def postgres_bin_dir() -> Path:
    """The newest installed PostgreSQL server's binaries."""
    candidates = sorted(
        (Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if candidates:
        return candidates[-1]
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise RuntimeError(f"PostgreSQL server binaries (initdb, pg_ctl) not found: {INSTALL_HINT}")


class PostgresServer:
    """One PostgreSQL server; :meth:`database` hands out fresh, empty databases on it."""

    def __init__(self) -> None:
        self.bin_dir = postgres_bin_dir()
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="moralscope-pg-"))
        self.data_dir = self.root / "data"
        self.log_path = self.root / "server.log"
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam("postgres")
            except KeyError as exc:
                raise RuntimeError(f"running as root needs the `postgres` system user: {INSTALL_HINT}") from exc
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self._as_user = ["runuser", "-u", "postgres", "--"]
        self._count = 0
        self._started = False

    @property
    def admin_url(self) -> str:
        return self.url("postgres")

    def url(self, dbname: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def _run(self, *argv: str, timeout: float = 120) -> None:
        completed = subprocess.run(
            [*self._as_user, *argv], capture_output=True, text=True, timeout=timeout, check=False, cwd=self.root
        )
        if completed.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({completed.returncode}):\n{completed.stderr[-3000:]}")

    def start(self) -> PostgresServer:
        self._run(
            str(self.bin_dir / "initdb"),
            "-D", str(self.data_dir), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync",
        )  # fmt: skip
        options = " ".join(
            [
                f"-p {self.port}",
                "-c listen_addresses=127.0.0.1",
                f"-c unix_socket_directories={self.root}",
                "-c max_connections=300",
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
            ]
        )
        self._run(
            str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_path), "-w", "-t", "60",
            "-o", options, "start",
        )  # fmt: skip
        self._started = True
        return self

    def database(self, prefix: str = "test") -> str:
        """A new empty database; returns its URL."""
        self._count += 1
        name = f"{prefix}_{self._count}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def log_tail(self, chars: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-chars:]
        return ""

    def stop(self) -> None:
        if self._started:
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate", "-w", "stop")
            self._started = False
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
