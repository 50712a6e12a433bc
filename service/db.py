"""The SQLite database under the job store: connections and versioned migrations.

One connection per thread (SQLite connections must not be shared across threads without a lock),
all opened in WAL mode with a busy timeout, so the API's request threads and the runner's job
threads read and write concurrently. Writes run in ``BEGIN IMMEDIATE`` transactions
(:meth:`Database.transaction`), which take the write lock up front instead of failing half-way.

The schema is versioned: :data:`MIGRATIONS` is an ordered list, ``schema_version`` records how many
have been applied, and opening a database applies the missing ones in one transaction each. A
database written by a newer moralscope (a version beyond the list) is refused rather than guessed at.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from schemas.errors import UnavailableError

MIGRATIONS: list[str] = [
    # 1: jobs, the models of each job, shards (the unit of progress and restart), events.
    """
    CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        idempotency_key TEXT,
        spec TEXT NOT NULL,
        spec_sha256 TEXT NOT NULL,
        name TEXT,
        state TEXT NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        started_at REAL,
        finished_at REAL,
        run_started_at REAL,
        error TEXT,
        location TEXT NOT NULL,
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        lease_owner TEXT,
        lease_expires REAL,
        provenance TEXT
    );
    CREATE UNIQUE INDEX jobs_idempotency ON jobs (owner, idempotency_key) WHERE idempotency_key IS NOT NULL;
    CREATE INDEX jobs_by_state ON jobs (state, created_at);
    CREATE INDEX jobs_by_owner ON jobs (owner, created_at);

    CREATE TABLE job_models (
        job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        model TEXT NOT NULL,
        phase TEXT NOT NULL DEFAULT 'pending',
        resolved_path TEXT,
        revision TEXT,
        fingerprint TEXT,
        PRIMARY KEY (job_id, position)
    );

    CREATE TABLE shards (
        job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
        model INTEGER NOT NULL,
        benchmark TEXT NOT NULL,
        condition TEXT NOT NULL,
        phase TEXT NOT NULL,
        shard INTEGER NOT NULL,
        requests INTEGER NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending',
        path TEXT,
        tokens INTEGER NOT NULL DEFAULT 0,
        finished_at REAL,
        PRIMARY KEY (job_id, model, benchmark, condition, phase, shard)
    );

    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
        created_at REAL NOT NULL,
        type TEXT NOT NULL,
        message TEXT
    );
    CREATE INDEX events_by_job ON events (job_id, id);
    """,
    # 2: how often a job was resumed after its runner died (a job that keeps killing the service fails).
    """
    ALTER TABLE jobs ADD COLUMN crash_resumes INTEGER NOT NULL DEFAULT 0;
    """,
    # 3: tokens computed (after prefix-cache hits) and error rows per shard; a running model's live progress
    # (JSON); a finished job's failed cells (JSON).
    """
    ALTER TABLE shards ADD COLUMN computed_tokens INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE shards ADD COLUMN errors INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE job_models ADD COLUMN progress TEXT;
    ALTER TABLE jobs ADD COLUMN failed_cells TEXT;
    """,
]
"""Ordered schema migrations; entry ``i`` moves the schema from version ``i`` to ``i + 1``. Append only."""


class Database:
    """A SQLite file with per-thread connections and the migrations applied."""

    def __init__(self, path: Path, *, busy_timeout_ms: int = 30_000) -> None:
        self.path = Path(path)
        self.busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UnavailableError(
                f"cannot create the job store's folder {self.path.parent}: {exc.strerror}; "
                "set MORALSCOPE_STORE_PATH to a writable location"
            ) from exc
        self._migrate()

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
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that holds the write lock from its start (``BEGIN IMMEDIATE``)."""
        conn = self.connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            conn.execute("COMMIT")

    def schema_version(self) -> int:
        row = self.connection().execute("SELECT version FROM schema_version").fetchone()
        return int(row[0]) if row else 0

    def _migrate(self) -> None:
        conn = self.connection()
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        with self.transaction():
            if conn.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0] == 0:
                conn.execute("INSERT INTO schema_version (version) VALUES (0)")
        current = self.schema_version()
        if current > len(MIGRATIONS):
            raise UnavailableError(
                f"the job store {self.path} has schema version {current}, newer than this moralscope "
                f"understands ({len(MIGRATIONS)}); upgrade moralscope or point MORALSCOPE_STORE_PATH elsewhere"
            )
        for version in range(current, len(MIGRATIONS)):
            with self.transaction() as tx:
                # Re-read under the write lock: another process may have migrated meanwhile.
                if int(tx.execute("SELECT version FROM schema_version").fetchone()[0]) != version:
                    continue
                for statement in _statements(MIGRATIONS[version]):
                    tx.execute(statement)
                tx.execute("UPDATE schema_version SET version = ?", (version + 1,))

    def check_writable(self) -> None:
        """Raise :class:`UnavailableError` unless a write transaction can be taken right now."""
        try:
            with self.transaction() as tx:
                tx.execute("UPDATE schema_version SET version = version")
        except sqlite3.Error as exc:
            raise UnavailableError(f"the job store {self.path} is not writable: {exc}") from exc

    def close(self) -> None:
        """Close every connection this database opened (call once no thread uses it any more)."""
        with self._lock:
            for conn in self._connections:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._connections.clear()
        self._local = threading.local()


def _statements(script: str) -> list[str]:
    """Split a migration into statements (executescript would commit our transaction)."""
    return [part.strip() for part in script.split(";") if part.strip()]
