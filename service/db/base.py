"""The interface both store backends implement, and what they share: transactions and migrations.

A backend hands out :class:`Tx` objects (one connection, SQL with ``?`` placeholders, rows readable by
column name) through :meth:`Database.transaction` (a write transaction: committed at the end, rolled
back on an exception) and :meth:`Database.read` (single statements, no transaction). The schema is
migrated once per database, under a lock, from :data:`service.db.migrations.MIGRATIONS`.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from schemas.errors import UnavailableError
from service.db import migrations
from service.db.dialects import Dialect

Row = Mapping[str, Any]


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Tx:
    """One connection of a backend, in or out of a transaction."""

    def __init__(self, connection: Any, dialect: Dialect) -> None:
        self.connection = connection
        self.dialect = dialect

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        cursor: Cursor = self.connection.execute(self.dialect.sql(sql), tuple(params))
        return cursor

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = [tuple(r) for r in rows]
        if rows:
            self.connection.cursor().executemany(self.dialect.sql(sql), rows)

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        row: Row | None = self.execute(sql, params).fetchone()
        return row

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return list(self.execute(sql, params).fetchall())

    def now(self) -> float:
        """The database's clock (seconds since the epoch): every stored time comes from it."""
        if self.dialect.now is None:
            return time.time()
        row = self.one(f"SELECT {self.dialect.now} AS now")
        assert row is not None
        return float(row["now"])

    def lock(self, name: str) -> None:
        """Hold a lock named ``name`` until this transaction ends (serialises e.g. one owner's submissions)."""
        if self.dialect.advisory_lock is not None:
            self.execute(self.dialect.advisory_lock, (name,))


class Database(abc.ABC):
    """A job store database; see the module docstring."""

    dialect: Dialect
    location: str
    """Where the database is, for messages (a path, or a URL without its password)."""

    @abc.abstractmethod
    def transaction(self) -> AbstractContextManager[Tx]:
        """A write transaction (exclusive on SQLite; row locks on PostgreSQL)."""

    @abc.abstractmethod
    def read(self) -> AbstractContextManager[Tx]:
        """A connection for reads (each statement sees the latest committed data)."""

    @abc.abstractmethod
    def check_writable(self) -> None:
        """Raise :class:`UnavailableError` unless the database accepts writes right now."""

    @abc.abstractmethod
    def close(self) -> None:
        """Close every connection (call once no thread uses the database any more)."""

    def schema_version(self) -> int:
        with self.read() as tx:
            row = tx.one("SELECT version FROM schema_version")
        return int(row["version"]) if row else 0

    def migrate(self) -> None:
        """Apply the migrations this database lacks, one transaction each, under a lock (other
        replicas starting at the same time wait, then find the work done)."""
        with self.transaction() as tx:
            tx.lock("moralscope schema")
            tx.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            if tx.one("SELECT version FROM schema_version") is None:
                tx.execute("INSERT INTO schema_version (version) VALUES (0)")
        current = self.schema_version()
        if current > len(migrations.MIGRATIONS):
            raise UnavailableError(
                f"the job store {self.location} has schema version {current}, newer than this moralscope "
                f"understands ({len(migrations.MIGRATIONS)}); upgrade moralscope or point MORALSCOPE_STORE_URL elsewhere"
            )
        for version in range(current, len(migrations.MIGRATIONS)):
            with self.transaction() as tx:
                tx.lock("moralscope schema")
                row = tx.one("SELECT version FROM schema_version")
                if row is None or int(row["version"]) != version:  # another replica migrated meanwhile
                    continue
                for statement in migrations.statements(
                    migrations.MIGRATIONS[version], self.dialect.name, self.dialect.tokens
                ):
                    tx.execute(statement)
                tx.execute("UPDATE schema_version SET version = ?", (version + 1,))
