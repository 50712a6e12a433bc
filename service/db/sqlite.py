"""The embedded backend: one SQLite file, one connection per thread, WAL mode.

SQLite connections must not be shared across threads without a lock, so each thread opens its own,
in WAL mode with a busy timeout: the API's request threads and the runner's job threads read and write
concurrently, and several processes on one machine may share the file (two servers hand a job over
after one is killed). Writes run in ``BEGIN IMMEDIATE`` transactions, which take the write lock up
front instead of failing half-way. Across machines (a network filesystem) SQLite's locking is not
safe: use PostgreSQL there.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from schemas.errors import UnavailableError
from service.db.base import Database, Tx
from service.db.dialects import SQLITE


class SqliteDatabase(Database):
    """A SQLite file with per-thread connections and the migrations applied."""

    dialect = SQLITE

    def __init__(self, path: Path | str, *, busy_timeout_ms: int = 30_000) -> None:
        self.path = Path(path)
        self.location = str(self.path)
        self.busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UnavailableError(
                f"cannot create the job store's folder {self.path.parent}: {exc.strerror}; "
                "set MORALSCOPE_STORE_PATH (or MORALSCOPE_STORE_URL) to a writable location"
            ) from exc
        self.migrate()

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (opened on first use)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(
                    self.path,
                    isolation_level=None,
                    timeout=self.busy_timeout_ms / 1000,
                    # used by one thread only; False just lets close() run from the owner of the store
                    check_same_thread=False,
                )
                conn.row_factory = sqlite3.Row
                conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
                conn.execute("PRAGMA journal_mode = WAL")
                # NORMAL is durable against a killed process in WAL mode (only a power loss can drop
                # the last commits), and it keeps shard commits cheap.
                conn.execute("PRAGMA synchronous = NORMAL")
                conn.execute("PRAGMA foreign_keys = ON")
            except sqlite3.Error as exc:
                raise UnavailableError(
                    f"cannot open the job store {self.path}: {exc}; set MORALSCOPE_STORE_PATH to a writable file"
                ) from exc
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        conn = self.connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield Tx(conn, self.dialect)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            conn.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[Tx]:
        yield Tx(self.connection(), self.dialect)

    def check_writable(self) -> None:
        try:
            with self.transaction() as tx:
                tx.execute("UPDATE schema_version SET version = version")
        except sqlite3.Error as exc:
            raise UnavailableError(f"the job store {self.path} is not writable: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._connections.clear()
        self._local = threading.local()
