"""Fixtures of the service tests: settings on temporary paths, and the in-process API app; the run's
summary names the folder of the console's screenshots (tests/service/browser_support.py)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from service.db import Database
from service.settings import Settings, get_settings
from service.store import JobStore


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


@pytest.fixture
def store(tmp_path: Path) -> Iterator[JobStore]:
    db = Database(tmp_path / "store.sqlite3")
    yield JobStore(db)
    db.close()


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
