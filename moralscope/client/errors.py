"""HTTP error responses → the exception tree of :mod:`schemas.errors`."""

from __future__ import annotations

import httpx

from schemas.errors import (
    AuthError,
    InvalidInputError,
    LimitExceededError,
    MoralscopeError,
    NotFoundError,
    UnavailableError,
)

RETRY_STATUS = frozenset({502, 503, 504})


def _error_from_response(response: httpx.Response) -> MoralscopeError:
    """The exception for an error response (the server's error body, or the bare status)."""
    code, message, field = "error", f"HTTP {response.status_code}", None
    try:
        detail = response.json()["error"]
        code, message, field = detail.get("code", code), detail.get("message", message), detail.get("field")
    except (ValueError, KeyError, TypeError):
        message = f"HTTP {response.status_code}: {response.text[:500]}"
    status = response.status_code
    error: MoralscopeError
    if status == 404:
        error = NotFoundError(message)
    elif status in (401, 403):
        error = AuthError(message)
    elif status in (413, 429):
        error = LimitExceededError(message, field=field, http_status=status)
    elif status in (400, 422):
        error = InvalidInputError(message, field=field)
    elif status in RETRY_STATUS:
        error = UnavailableError(message)
    else:
        error = MoralscopeError(message, field=field)
    error.code = code
    error.http_status = status
    return error
