"""The FastAPI application: routers, the web console, error handlers, limits, and the runner in the background.

:func:`create_app` builds an app for given settings (default: the environment's). The job store is
opened when the app is built; the runner starts with the app's lifespan and stops with it, leaving
unfinished jobs resumable. ``run_jobs=False`` serves the API without executing jobs (a read-only
replica, or API tests that must not start models).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import metadata

from fastapi import FastAPI

from service.api import health, jobs, reports, uploads
from service.api.body_limit import BodySizeLimit
from service.api.errors import install_error_handlers
from service.auth import KeyRing
from service.console import install_console
from service.runner.scheduler import Runner
from service.sessions import SessionSigner
from service.settings import Settings, get_settings
from service.store import open_store
from service.telemetry import make_registry

DESCRIPTION = """\
Batch evaluation of moral self-correction in language models (Ganguli et al. 2023): BBQ, Winogender and
law-school admissions under the conditions Q, Q+IF, Q+IF+CoT and Q+MatchStats.

Submit a job spec, follow it (`/v1/jobs/{id}/events`), download `samples.parquet` and `metrics.parquet`.
Custom benchmarks over your own data: upload the file (`POST /v1/uploads`) and name its `ref` in the spec.
With API keys configured, every `/v1` call needs `Authorization: Bearer <key>` (or the web console's
session cookie). Errors are `{"error": {"code", "message", "field"}}`. The web console is at `/`.
"""

logger = logging.getLogger("moralscope.service")


def _version() -> str:
    try:
        return metadata.version("moralscope")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0+unknown"


def create_app(settings: Settings | None = None, *, run_jobs: bool = True) -> FastAPI:
    """The API app. Raises ValueError when the API keys file cannot be read."""
    settings = settings or get_settings()
    logging.getLogger("moralscope").setLevel(settings.log_level.upper())
    keyring = KeyRing.from_settings(settings)
    if keyring.enabled and settings.session_secret is None:
        logger.warning(
            "MORALSCOPE_SESSION_SECRET is not set: web console logins last only as long as this process and "
            "are not shared with other replicas; set it (from a Secret) to keep them across restarts and replicas"
        )
    store = open_store(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runner = Runner(store, settings) if run_jobs else None
        app.state.runner = runner
        if runner is not None:
            runner.start()
        try:
            yield
        finally:
            if runner is not None:
                runner.stop()
            store.db.close()

    app = FastAPI(title="moralscope", version=_version(), description=DESCRIPTION, lifespan=lifespan)
    app.state.settings = settings
    app.state.store = store
    app.state.keyring = keyring
    app.state.sessions = SessionSigner.from_settings(settings)
    app.state.runner = None
    app.state.metrics_registry = make_registry(store)
    app.dependency_overrides[get_settings] = lambda: settings
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes, streamed_paths=frozenset({"/v1/uploads"}))
    app.include_router(jobs.router)
    app.include_router(reports.router)
    app.include_router(uploads.router)
    app.include_router(health.router)
    install_console(app)
    return app
