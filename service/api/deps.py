"""FastAPI dependencies, as ``Annotated`` aliases: the settings, the job store, the runner, the caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from schemas.errors import ForbiddenError
from service.auth import KeyRing, Principal
from service.runner.scheduler import Runner
from service.sessions import CSRF_HEADER, SAFE_METHODS, SessionSigner, is_cross_origin, session_of
from service.settings import Settings, get_settings
from service.store import JobStore

_bearer = HTTPBearer(auto_error=False, description="An API key from MORALSCOPE_API_KEYS (when the server has keys).")


def get_store(request: Request) -> JobStore:
    store: JobStore = request.app.state.store
    return store


def get_runner(request: Request) -> Runner | None:
    runner: Runner | None = request.app.state.runner
    return runner


def refuse_cross_origin(request: Request) -> None:
    """ForbiddenError → 403 for a request that changes something and that a page of another site sent."""
    if request.method not in SAFE_METHODS and is_cross_origin(request):
        raise ForbiddenError(
            f"cross-site request refused: {request.method} {request.url.path} came from a page of "
            f"{request.headers.get('origin')}, not of this server"
        )


def get_principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    """Who is calling: the API key of ``Authorization: Bearer``, else the web console's session cookie.

    Raises AuthError → 401 when the server has keys and the call has a wrong or no key (and no logged-in
    session); ForbiddenError → 403 for a cross-site request that changes something, or for one that is
    authenticated by the cookie alone without the session's CSRF token (the ``X-CSRF-Token`` header).
    """
    refuse_cross_origin(request)
    keyring: KeyRing = request.app.state.keyring
    header = f"{credentials.scheme} {credentials.credentials}" if credentials else request.headers.get("authorization")
    if header is None and keyring.enabled:
        session = session_of(request)
        principal = keyring.session_principal(session.owner) if session else None
        if principal is not None:
            signer: SessionSigner = request.app.state.sessions
            if request.method not in SAFE_METHODS and not signer.csrf_valid(session, request.headers.get(CSRF_HEADER)):
                raise ForbiddenError(
                    f"{request.method} {request.url.path} with the console's session cookie needs its CSRF token "
                    f"in the {CSRF_HEADER} header (or send `Authorization: Bearer <key>` instead)"
                )
            return principal
    return keyring.authenticate(header)


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[JobStore, Depends(get_store)]
RunnerDep = Annotated[Runner | None, Depends(get_runner)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
