"""Fixtures of the SDK tests: the real API app (SQLite store, no runner) on uvicorn at 127.0.0.1, behind
:class:`client_support.Faults`; faults and the request log are reset after each test."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from client_support import KEY, Faults, LiveApp, free_port

from service.app import create_app
from service.settings import Settings


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    """The real app on uvicorn in a thread (module-wide); faults and the log are reset per test."""
    state = tmp_path_factory.mktemp("sdk")
    settings = Settings(
        store_path=state / "jobs.sqlite3", results_uri=str(state / "results"), download=False, api_keys=KEY
    )
    app = create_app(settings, run_jobs=False)
    faults = Faults(app)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(faults, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield LiveApp(f"http://127.0.0.1:{port}", faults, app)
    finally:
        server.should_exit = True
        thread.join(30)


@pytest.fixture(autouse=True)
def _clean_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "live" in request.fixturenames:
        request.getfixturevalue("live").faults.reset()
