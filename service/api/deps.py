"""FastAPI dependencies, as ``Annotated`` aliases: the settings, the job store, the runner, the caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.auth import KeyRing, Principal
from service.runner.scheduler import Runner
from service.settings import Settings, get_settings
from service.store import JobStore

_bearer = HTTPBearer(auto_error=False, description="An API key from MORALSCOPE_API_KEYS (when the server has keys).")


def get_store(request: Request) -> JobStore:
    store: JobStore = request.app.state.store
    return store


def get_runner(request: Request) -> Runner | None:
    runner: Runner | None = request.app.state.runner
    return runner


def get_principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    """Who is calling (raises AuthError → 401 when the server has keys and the call has a wrong or no key)."""
    keyring: KeyRing = request.app.state.keyring
    header = f"{credentials.scheme} {credentials.credentials}" if credentials else request.headers.get("authorization")
    return keyring.authenticate(header)


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[JobStore, Depends(get_store)]
RunnerDep = Annotated[Runner | None, Depends(get_runner)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
