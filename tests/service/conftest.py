"""Fixtures of the service tests: settings on temporary paths, job stores on both backends (SQLite and a
real PostgreSQL server started for the session), an S3-compatible server; the run's summary names the
folder of the console's screenshots (tests/service/browser_support.py)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from service.db import open_database
from service.settings import Settings, get_settings
from service.store import JobStore
from tests.support.postgres import PostgresServer
from tests.support.s3 import MotoS3Server

BACKENDS = ("sqlite", "postgresql")


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings whose store and results live under tmp_path (datasets: MORALSCOPE_DATA_DIR, no downloads)."""

    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "store_path": tmp_path / "jobs.sqlite3",
            "results_uri": str(tmp_path / "results"),
            "download": False,
            "ray_num_cpus": 2,
        }
        values.update(overrides)
        return Settings(**values)

    return build


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the whole session (each test takes a fresh database on it)."""
    with PostgresServer() as server:
        yield server


@pytest.fixture(scope="session")
def s3_server() -> Iterator[MotoS3Server]:
    """moto's S3-compatible server on 127.0.0.1 for the whole session."""
    with MotoS3Server() as server:
        yield server


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty job store of each backend in turn (MORALSCOPE_STORE_URL)."""
    if request.param == "sqlite":
        return f"sqlite://{tmp_path}/store.sqlite3"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.database()


@pytest.fixture
def store(store_url: str) -> Iterator[JobStore]:
    store = JobStore(open_database(store_url))
    yield store
    store.db.close()


@pytest.fixture(autouse=True)
def _fresh_settings_cache() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    browser_support = sys.modules.get("browser_support")
    if browser_support is not None and browser_support.TAKEN:
        terminalreporter.write_line(
            f"console screenshots ({len(browser_support.TAKEN)}) for people to look at: {browser_support.SCREENSHOTS}"
        )
