"""Logging in to the console with an API key (once per session), and logging out.

The key travels only in the body of the login form's POST: never in a URL (so never in an access log,
the browser's history or a Referer), and the server neither logs nor echoes it. A successful login opens
a new session for the key's owner (a fresh session id, so a session fixed before login is worthless).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response

from schemas.errors import AuthError
from service.auth import KeyRing
from service.console.deps import FormVisitDep, Visit, VisitDep
from service.console.render import page, see_other
from service.console.routing import ConsoleRoute
from service.sessions import SessionSigner, set_session_cookie

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)


def local_path(target: str | None) -> str:
    """``target`` when it is a path on this server, else ``/`` (never a redirect to another site)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    return target


def _login_form(
    request: Request, visit: Visit, *, next_path: str, status: int = 200, error: str | None = None
) -> Response:
    return page(request, visit, "login.html", status=status, next_path=next_path, error=error)


@router.get("/login", response_class=HTMLResponse)
def login_form(
    request: Request, visit: VisitDep, next: Annotated[str | None, Query(max_length=2000)] = None
) -> Response:
    if visit.principal is not None:  # logged in already, or a server without keys: nothing to log in to
        return see_other(request, visit, local_path(next))
    return _login_form(request, visit, next_path=local_path(next))


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    visit: FormVisitDep,
    key: Annotated[str, Form(max_length=4096, description="An API key of this server.")] = "",
    next: Annotated[str | None, Form(max_length=2000)] = None,
) -> Response:
    keyring: KeyRing = request.app.state.keyring
    target = local_path(next)
    if not key.strip():
        return _login_form(request, visit, next_path=target, status=401, error="enter an API key of this server")
    try:
        principal = keyring.authenticate_key(key)
    except AuthError as exc:
        return _login_form(request, visit, next_path=target, status=401, error=exc.message)
    signer: SessionSigner = request.app.state.sessions
    _, cookie = signer.issue(principal.owner if principal.authenticated else None)
    response = see_other(request, visit, target)
    set_session_cookie(response, request, cookie, max_age=signer.max_age)
    return response


@router.post("/logout")
def logout(request: Request, visit: FormVisitDep) -> Response:
    signer: SessionSigner = request.app.state.sessions
    _, cookie = signer.issue(None)
    response = see_other(request, visit, "/login" if visit.keys_required else "/")
    set_session_cookie(response, request, cookie, max_age=signer.max_age)
    return response
