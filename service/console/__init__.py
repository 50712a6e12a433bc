"""The web console, served by the API at ``/``: the jobs list, a job's page, the submit form, login.

Server-rendered HTML (Jinja2 templates in ``templates/``) with one small script and one stylesheet
(``static/``, served by the app itself): no build step, nothing loaded from elsewhere. Routes stay thin
like the API's and call the same service layer (:mod:`service.jobs`), so the console shows exactly what
the API shows and nothing of another key's jobs.

- :mod:`~service.console.pages`: ``/`` (jobs, live progress), ``/jobs/{id}``, cancel, the list's stream;
- :mod:`~service.console.submit`: ``/submit`` (paste or upload a spec; errors at the field they name);
- :mod:`~service.console.login`: ``/login`` and ``/logout`` (with API keys: a key once, then a session);
- :mod:`~service.console.deps`: sessions and form checks; :mod:`~service.console.routing`: error pages;
- :mod:`~service.console.render`: templates, formatting, security headers.

Live updates: a job's page follows ``GET /v1/jobs/{id}/events``; the list follows ``GET /events``, one
stream for all its unfinished jobs. Both are authenticated by the session cookie (an ``EventSource``
cannot send an ``Authorization`` header).
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from service.console import login, pages, submit


def install_console(app: FastAPI) -> None:
    """Serve the console's pages and static files from ``app``."""
    for module in (pages, submit, login):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(packages=[("service.console", "static")]), name="console-static")
