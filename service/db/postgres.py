"""The scale-out backend: PostgreSQL through psycopg 3 and a connection pool.

Any number of API replicas share one PostgreSQL database. Write transactions run at READ COMMITTED;
what must not race across replicas is serialised by row locks (claiming a job: ``FOR UPDATE SKIP
LOCKED``; fencing: the job's row) or by transaction-scoped advisory locks (one owner's submissions, the
migrations). A connection that breaks (a restarted database) fails the request using it with
:class:`UnavailableError` (HTTP 503) and is replaced by the pool; the next requests get fresh ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from schemas.errors import UnavailableError
from service.db.base import Database, Tx
from service.db.dialects import POSTGRESQL


def redact(url: str) -> str:
    """``url`` without its password (for messages and logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + host))


class PostgresDatabase(Database):
    """A PostgreSQL database (``postgresql://user:password@host:port/dbname?options``)."""

    dialect = POSTGRESQL

    def __init__(self, url: str, *, max_connections: int = 16, connect_timeout: float = 15.0) -> None:
        self.url = url
        self.location = redact(url)
        try:  # one plain connection first: it reports why the database cannot be reached
            psycopg.connect(url, connect_timeout=max(1, int(connect_timeout))).close()
        except psycopg.Error as exc:
            raise UnavailableError(
                f"cannot connect to the job store {self.location}: {str(exc).strip()}; check MORALSCOPE_STORE_URL"
            ) from exc
        self._pool: ConnectionPool[psycopg.Connection[dict[str, object]]] = ConnectionPool(
            url,
            min_size=1,
            max_size=max_connections,
            kwargs={"autocommit": True, "row_factory": dict_row},
            name="moralscope-store",
            timeout=connect_timeout,
            open=False,
        )
        self._pool.open(wait=True, timeout=connect_timeout)
        try:
            self.migrate()
        except BaseException:
            self._pool.close()
            raise

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[dict[str, object]]]:
        try:
            with self._pool.connection() as conn:
                yield conn
        except psycopg.OperationalError as exc:
            raise UnavailableError(f"the job store {self.location} is unavailable: {str(exc).strip()}") from exc

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        with self._connection() as conn, conn.transaction():
            yield Tx(conn, self.dialect)

    @contextmanager
    def read(self) -> Iterator[Tx]:
        with self._connection() as conn:
            yield Tx(conn, self.dialect)

    def check_writable(self) -> None:
        with self.transaction() as tx:
            row = tx.one("SELECT current_setting('transaction_read_only') AS read_only")
        if row is None or row["read_only"] != "off":
            raise UnavailableError(f"the job store {self.location} is read-only (a standby?)")

    def close(self) -> None:
        self._pool.close()
