"""HTML responses of the console: Jinja2 templates (package data), formatting filters, security headers.

Every page is rendered on the server and works without JavaScript; ``static/console.js`` only makes
progress live. Pages may load nothing but this server's own files: the Content-Security-Policy below
forbids inline scripts and styles and every other origin, so a stray external asset fails loudly in
the browser tests instead of leaking requests.
"""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from service.console.deps import Visit
from service.sessions import CSRF_FIELD, SessionSigner, set_session_cookie

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "frame-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'self'",
        "base-uri 'none'",
        "object-src 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",  # pages carry private job data and the session's CSRF token
}

REPORT_HEADERS = {
    # report.html is one self-contained page of inline styles and SVG: it may run nothing and fetch nothing
    "Content-Security-Policy": "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "font-src data:; frame-ancestors 'self'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


def duration(seconds: float | None) -> str:
    """``42 s``, ``3 min 05 s``, ``2 h 07 min``; an en dash when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "–"
    total = max(0, round(seconds))
    if total < 60:
        return f"{total} s"
    if total < 3600:
        return f"{total // 60} min {total % 60:02d} s"
    return f"{total // 3600} h {total % 3600 // 60:02d} min"


def number(value: Any, digits: int = 1) -> str:
    """Thousands separated; floats with at most ``digits`` decimals; an en dash for None or NaN."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.{digits}f}"


def when(value: datetime | None) -> str:
    return "–" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


def timestamp(seconds: float) -> str:
    """A Unix time as ``2026-11-29 23:01:54`` (UTC)."""
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def percent(done: int, total: int) -> str:
    return f"{100 * done / total:.0f}%" if total else "–"


def words(name: str) -> str:
    """A field name for people: ``tokens_per_second`` → ``tokens per second``."""
    return name.replace("_", " ")


def _static_versions() -> dict[str, str]:
    folder = resources.files("service.console") / "static"
    return {
        entry.name: hashlib.sha256(entry.read_bytes()).hexdigest()[:10] for entry in folder.iterdir() if entry.is_file()
    }


_VERSIONS = _static_versions()


def static(name: str) -> str:
    """The URL of a static file, versioned by its content so browsers never run a stale script."""
    return f"/static/{name}?v={_VERSIONS[name]}"


TEMPLATES = Environment(
    loader=PackageLoader("service.console", "templates"),
    autoescape=select_autoescape(("html",)),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
TEMPLATES.filters.update(duration=duration, number=number, when=when, timestamp=timestamp, words=words)
TEMPLATES.globals.update(static=static, percent=percent, csrf_field=CSRF_FIELD)


def remember_session(response: Response, request: Request, visit: Visit) -> None:
    """Set the cookie of a session the request opened."""
    if visit.new_cookie is not None:
        signer: SessionSigner = request.app.state.sessions
        set_session_cookie(response, request, visit.new_cookie, max_age=signer.max_age)


def page(request: Request, visit: Visit, template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    """A rendered page (its session cookie set when the visit opened one)."""
    context.setdefault("nav", None)
    html = TEMPLATES.get_template(template).render(visit=visit, **context)
    response = HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)
    remember_session(response, request, visit)
    return response


def see_other(request: Request, visit: Visit, url: str) -> RedirectResponse:
    """303 to ``url`` (after a form post, or to the login page)."""
    response = RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})
    remember_session(response, request, visit)
    return response
