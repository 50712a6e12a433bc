"""Every error the API returns, as ``{"error": {"code", "message", "field"}}``, mapped in one place.

- :class:`~schemas.errors.MoralscopeError` → its ``http_status`` and ``code`` (the tree in schemas/errors.py);
- request validation (pydantic) → 422 ``invalid_input`` naming the field as a dotted path (``models.0.dtype``);
- Starlette's HTTP errors (unknown route, wrong method) → their status with a stable code;
- anything else → 500 ``internal_error``, logged with its traceback; the server carries on.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from schemas.errors import AuthError, MoralscopeError, field_path
from schemas.jobs import ErrorBody

logger = logging.getLogger("moralscope.service")

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "limit_exceeded",
    415: "unsupported_media_type",
}
_MAX_LISTED = 5
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": description}
    for code, description in (
        (401, "Missing or wrong API key."),
        (404, "No such job (or not yours)."),
        (413, "Request body too large."),
        (422, "Invalid input; `field` names the offending field."),
        (429, "Too many unfinished jobs for this API key."),
        (500, "Internal error."),
    )
}
"""The error responses every /v1 route documents in the OpenAPI schema."""


def error_response(status: int, code: str, message: str, field: str | None = None, **headers: str) -> JSONResponse:
    return JSONResponse(ErrorBody.of(code, message, field).to_dict(), status_code=status, headers=headers or None)


def _field_path(location: Sequence[Any]) -> str | None:
    parts = list(location)
    if parts and parts[0] in ("body", "query", "path", "header"):
        source, parts = parts[0], parts[1:]
        if source == "header" and parts:
            return str(parts[0])
    return field_path(parts)


def _describe(error: dict[str, Any]) -> str:
    message = str(error.get("msg", "invalid value"))
    message = re.sub(r"^(Value|Assertion) error, ", "", message)
    if error.get("type") == "json_invalid":
        return f"the request body is not valid JSON: {error.get('ctx', {}).get('error', message)}"
    value = error.get("input")
    if error.get("type") not in ("missing", "extra_forbidden") and value is not None and len(repr(value)) <= 80:
        message = f"{message}, got {value!r}"
    if tuple(error.get("loc", ())) == ("body",):
        return "the request body must be a JSON job spec (an object)" + (
            "" if error.get("type") == "missing" else f": {message}"
        )
    return message


def _drop_union_alternatives(errors: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop "should be a valid string" when the same value also failed as a model (the likelier intent)."""
    kept = []
    for error in errors:
        loc = tuple(error.get("loc", ()))
        if loc and isinstance(loc[-1], str) and field_path(loc[-1:]) is None:
            prefix = loc[:-1]
            if any(
                tuple(other.get("loc", ()))[: len(prefix)] == prefix and len(other.get("loc", ())) > len(loc)
                for other in errors
            ):
                continue
        kept.append(error)
    return kept


def validation_error_body(errors: Sequence[dict[str, Any]]) -> tuple[str, str | None]:
    """(message, field) for pydantic errors: the deepest error names the field; up to five are listed."""
    errors = _drop_union_alternatives(errors)
    if not errors:
        return "invalid request", None
    if errors[0].get("type") == "json_invalid":
        return _describe(errors[0]), None
    deepest = max(errors, key=lambda e: len(_field_path(e.get("loc", ())) or ""))
    field = _field_path(deepest.get("loc", ()))
    listed = []
    for error in errors[:_MAX_LISTED]:
        path = _field_path(error.get("loc", ()))
        listed.append(f"{path}: {_describe(error)}" if path else _describe(error))
    if len(errors) > _MAX_LISTED:
        listed.append(f"and {len(errors) - _MAX_LISTED} more")
    return "; ".join(dict.fromkeys(listed)), field


async def _moralscope_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, MoralscopeError)
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, AuthError) and exc.http_status == 401 else {}
    return error_response(exc.http_status, exc.code, exc.message, exc.field, **headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    message, field = validation_error_body(list(exc.errors()))
    return error_response(422, "invalid_input", message, field)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    if exc.status_code == 400 and exc.detail == "There was an error parsing the body":
        # FastAPI's answer to a body that is not even text; to clients it is one more malformed spec
        return error_response(422, "invalid_input", "the request body is not valid JSON (UTF-8 text expected)")
    if exc.status_code == 404 and exc.detail == "Not Found":
        message = f"no route {request.method} {request.url.path}; see /docs for the API"
    else:
        message = str(exc.detail)
    return error_response(exc.status_code, code, message, **(exc.headers or {}))


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    incident = secrets.token_hex(4)
    logger.exception("unexpected error %s on %s %s", incident, request.method, request.url.path, exc_info=exc)
    return error_response(
        500, "internal_error", f"internal error (incident {incident}, logged by the server); please report it"
    )


def install_error_handlers(app: FastAPI) -> None:
    """Register the one mapping from exceptions to error responses."""
    app.add_exception_handler(MoralscopeError, _moralscope_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
