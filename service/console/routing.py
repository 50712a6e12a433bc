"""How console routes fail: as HTML pages for people (the API keeps its JSON errors), and to the login page.

:class:`ConsoleRoute` is the ``route_class`` of every console router; it catches what a handler or a
dependency raises: :class:`~service.console.deps.LoginRequired` becomes a redirect to ``/login``,
a :class:`~schemas.errors.MoralscopeError` or a malformed request becomes an error page with the
error's status.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import quote

from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from schemas.errors import MoralscopeError
from service.api.errors import validation_error_body
from service.console.deps import LoginRequired, get_visit
from service.console.render import SECURITY_HEADERS, page, see_other
from service.sessions import COOKIE_NAME

# A navigation that another site started carries no SameSite=Strict cookie; reloading the page from
# the page itself does (the browser then treats it as same-site), so a logged-in user who follows a
# link from elsewhere is not asked to log in again.
_RELOAD_SAME_SITE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="0"><title>moralscope</title></head>
<body><p>Opening the moralscope console… <a href="">Continue</a></p></body></html>"""


def login_redirect(request: Request, exc: LoginRequired) -> Response:
    if COOKIE_NAME not in request.cookies and request.headers.get("sec-fetch-site") == "cross-site":
        return HTMLResponse(_RELOAD_SAME_SITE, headers=SECURITY_HEADERS)
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    suffix = "" if target == "/" else f"?next={quote(target, safe='/')}"
    return see_other(request, exc.visit, f"/login{suffix}")


def error_page(request: Request, status: int, message: str) -> Response:
    """An error page. It never sets a cookie: the failed request may be a forged one from another site,
    whose answer must not replace the browser's session."""
    visit = dataclasses.replace(get_visit(request), new_cookie=None)
    return page(request, visit, "error.html", status=status, status_code=status, message=message)


class ConsoleRoute(APIRoute):
    """An APIRoute whose failures are pages for people."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except LoginRequired as exc:
                return login_redirect(request, exc)
            except MoralscopeError as exc:
                return error_page(request, exc.http_status, exc.message)
            except RequestValidationError as exc:
                message, _ = validation_error_body(list(exc.errors()))
                return error_page(request, 422, message)

        return handle
