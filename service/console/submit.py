"""The submit form: a job spec pasted or uploaded (YAML or JSON), validated as ``POST /v1/jobs`` validates it.

An invalid spec comes back in the form with the error shown at the field it names: the dotted path
(``models.0.dtype``), the message, and the lines of the text around that field. Each rendering of the
form carries a fresh submission id; with the spec's digest it is the job's idempotency key, so a form sent
twice queues one job, and an edited spec sent from the same form (after going back) queues a new one.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from schemas.errors import InvalidInputError, MoralscopeError
from schemas.jobs import JobView
from schemas.spec import JobSpec
from service import jobs
from service.api.deps import RunnerDep, SettingsDep, StoreDep
from service.api.errors import validation_error_body
from service.auth import Principal
from service.console.deps import FormUserDep, User, UserDep
from service.console.render import page, see_other
from service.console.routing import ConsoleRoute
from service.console.spec_text import SPEC_FIELD, excerpt, locate_field, parse_spec_text
from service.runner.scheduler import Runner
from service.settings import Settings
from service.store import JobStore, spec_digest

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

EXAMPLE = """\
name: my-job
models:
  - name: smollm2-135m-instruct
    labels: {params_b: 0.135}
benchmarks:
  bbq: {categories: [Age], limit: 10}
  winogender: {limit: 10}
conditions: [Q, Q+IF]
"""


def submit_spec_text(
    *,
    store: JobStore,
    settings: Settings,
    principal: Principal,
    text: str,
    submission: str | None,
    runner: Runner | None,
) -> JobView:
    """Parse, validate and queue a spec given as text; InvalidInputError (naming the field) when it is wrong."""
    data = parse_spec_text(text)
    try:
        spec = JobSpec.model_validate(data)
    except ValidationError as exc:
        message, field = validation_error_body([dict(error) for error in exc.errors()])
        raise InvalidInputError(message, field=field) from None
    key = f"console:{submission}:{spec_digest(spec)[:16]}" if submission else None
    view, _ = jobs.submit_job(
        store=store, settings=settings, principal=principal, spec=spec, idempotency_key=key, runner=runner
    )
    return view


def _spec_text(spec: str, file: UploadFile | None) -> str:
    """The uploaded file's text when a file was chosen, else the pasted text."""
    if file is None or not file.filename:
        return spec
    content = file.file.read()
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInputError(f"{file.filename} is not a UTF-8 text file (YAML or JSON)", field="file") from None


def _form(
    request: Request, user: User, *, text: str, status: int = 200, error: MoralscopeError | None = None
) -> Response:
    line = locate_field(text, error.field) if error is not None else None
    message = error.message.removeprefix(f"{error.field}: ") if error is not None else None
    return page(
        request,
        user.visit,
        "submit.html",
        status=status,
        nav="submit",
        text=text,
        error=error,
        message=message,
        error_line=line,
        lines=excerpt(text, line),
        spec_field=SPEC_FIELD,
        submission=secrets.token_urlsafe(12),
    )


@router.get("/submit", response_class=HTMLResponse)
def submit_form(request: Request, user: UserDep) -> Response:
    return _form(request, user, text=EXAMPLE)


@router.post("/submit", response_class=HTMLResponse)
def submit(
    request: Request,
    user: FormUserDep,
    store: StoreDep,
    settings: SettingsDep,
    runner: RunnerDep,
    spec: Annotated[str, Form(max_length=1_000_000)] = "",
    file: Annotated[UploadFile | None, File(description="A spec file (YAML or JSON).")] = None,
    submission: Annotated[str | None, Form(max_length=64)] = None,
) -> Response:
    text = spec
    try:
        text = _spec_text(spec, file)
        view = submit_spec_text(
            store=store, settings=settings, principal=user.principal, text=text, submission=submission, runner=runner
        )
    except MoralscopeError as exc:
        return _form(request, user, text=text, status=exc.http_status, error=exc)
    return see_other(request, user.visit, f"/jobs/{view.id}")
