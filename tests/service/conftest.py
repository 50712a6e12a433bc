"""Fixtures of the service tests: settings on temporary paths, and the in-process API app."""

from __future__ import annotations

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
