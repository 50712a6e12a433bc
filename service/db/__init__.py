"""The database under the job store: SQLite (embedded, the default) or PostgreSQL (several replicas).

- :mod:`service.db.base`: the :class:`Database` interface (transactions, reads) and the migration runner;
- :mod:`service.db.migrations`: the schema as one ordered list of migrations for both databases;
- :mod:`service.db.dialects`: what differs between the two, stated once;
- :mod:`service.db.sqlite` and :mod:`service.db.postgres`: the backends.

:func:`open_database` picks the backend from a URL (``MORALSCOPE_STORE_URL``): ``sqlite:///abs/path``
or ``postgresql://user:password@host:port/dbname``.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from schemas.errors import InvalidInputError
from service.db.base import Database, Tx
from service.db.migrations import MIGRATIONS
from service.db.sqlite import SqliteDatabase

__all__ = ["MIGRATIONS", "Database", "SqliteDatabase", "Tx", "open_database", "sqlite_path"]

POSTGRES_SCHEMES = ("postgresql", "postgres")


def sqlite_path(url: str) -> Path:
    """The file of a ``sqlite:///absolute/path`` URL (``sqlite:////absolute/path`` is accepted too)."""
    parts = urlsplit(url)
    if parts.scheme != "sqlite" or parts.netloc or not parts.path.startswith("/"):
        raise InvalidInputError(
            f"store URL {url!r} is not sqlite:///absolute/path; set MORALSCOPE_STORE_URL to sqlite:///path/jobs.sqlite3 "
            "or postgresql://user:password@host:5432/dbname",
            field="store_url",
        )
    return Path("/" + unquote(parts.path).lstrip("/"))


def check_store_url(url: str) -> str:
    """``url`` if it names a backend (raises :class:`InvalidInputError` naming the setting otherwise)."""
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        sqlite_path(url)
    elif scheme not in POSTGRES_SCHEMES:
        raise InvalidInputError(
            f"store URL must be sqlite:///path or postgresql://..., got {url.split('@')[-1]!r}; "
            "set MORALSCOPE_STORE_URL accordingly",
            field="store_url",
        )
    return url


def open_database(url: str) -> Database:
    """The database at ``url``, migrated (see the module docstring)."""
    check_store_url(url)
    if urlsplit(url).scheme == "sqlite":
        return SqliteDatabase(sqlite_path(url))
    from service.db.postgres import PostgresDatabase  # psycopg is needed only for PostgreSQL

    return PostgresDatabase(url)
