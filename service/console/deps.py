"""Who is looking at a console page, and the checks its forms pass, as ``Annotated`` dependencies.

Every console request has a session (:mod:`service.sessions`): one is opened on the first visit, so
that even the login form carries a CSRF token. With API keys configured, pages need a logged-in
session (:class:`LoginRequired` sends the browser to ``/login``); without keys everyone is the local
owner and no login is asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Form, Request

from schemas.errors import ForbiddenError
from service.api.deps import refuse_cross_origin
from service.auth import KeyRing, Principal
from service.sessions import CSRF_FIELD, Session, SessionSigner, session_of


@dataclass(frozen=True)
class Visit:
    """One console request: the browser's session and who it is logged in as."""

    session: Session
    csrf_token: str
    principal: Principal | None
    """None when the server has keys and the session is not logged in."""
    keys_required: bool
    """Whether the server has API keys (so the console has a login and a logout)."""
    new_cookie: str | None = None
    """The cookie of a session opened by this request, which the response must set."""


class LoginRequired(Exception):
    """A page that needs a logged-in session was asked for without one."""

    def __init__(self, visit: Visit) -> None:
        super().__init__("login required")
        self.visit = visit


def get_visit(request: Request) -> Visit:
    """The request's session (a new one when it has none), with its CSRF token and principal."""
    signer: SessionSigner = request.app.state.sessions
    keyring: KeyRing = request.app.state.keyring
    session, cookie = session_of(request), None
    if session is None:
        session, cookie = signer.issue(None)
    return Visit(
        session=session,
        csrf_token=signer.csrf_token(session),
        principal=keyring.session_principal(session.owner),
        keys_required=keyring.enabled,
        new_cookie=cookie,
    )


@dataclass(frozen=True)
class User:
    """A console request by someone allowed to see jobs: the visit and its (non-optional) principal."""

    visit: Visit
    principal: Principal


def get_user(visit: Annotated[Visit, Depends(get_visit)]) -> User:
    """The visit of a logged-in (or keyless local) user; :class:`LoginRequired` otherwise."""
    if visit.principal is None:
        raise LoginRequired(visit)
    return User(visit, visit.principal)


def check_form(request: Request, visit: Visit, token: str | None) -> None:
    """ForbiddenError unless a form post comes from this console: same origin, and the session's CSRF token."""
    refuse_cross_origin(request)
    signer: SessionSigner = request.app.state.sessions
    if visit.new_cookie is not None or not signer.csrf_valid(visit.session, token):
        raise ForbiddenError(
            "this form did not come from your current console session (it may have expired, or cookies are "
            "blocked): reload the page and submit it again"
        )


FormToken = Annotated[str | None, Form(alias=CSRF_FIELD, description="The session's CSRF token.")]


def get_form_visit(
    request: Request, visit: Annotated[Visit, Depends(get_visit)], csrf_token: FormToken = None
) -> Visit:
    """The visit of a form post that passed :func:`check_form`."""
    check_form(request, visit, csrf_token)
    return visit


def get_form_user(form: Annotated[Visit, Depends(get_form_visit)], user: Annotated[User, Depends(get_user)]) -> User:
    """The logged-in user of a form post that passed :func:`check_form` (checked first: a forged post is
    refused as such, not sent to the login page)."""
    del form
    return user


VisitDep = Annotated[Visit, Depends(get_visit)]
UserDep = Annotated[User, Depends(get_user)]
FormVisitDep = Annotated[Visit, Depends(get_form_visit)]
FormUserDep = Annotated[User, Depends(get_form_user)]
