"""HTTP error responses → the exception tree of :mod:`schemas.errors`, with the server's Retry-After.

The server answers every error with ``{"error": {"code", "message", "field"}}``; :func:`error_from_response`
turns that (or a bare status, from a proxy) into the matching exception, carrying ``http_status``,
``code``, ``field`` and ``retry_after`` (seconds, from a ``Retry-After`` header in either of its two
forms). A connection that fails before any response is :func:`unreachable`.
"""

from __future__ import annotations

import email.utils
import time

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
"""Statuses that say "not now" (a proxy or the server is briefly unavailable): retried."""


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delay-seconds (``120``) or an HTTP date.

    A date in the past gives 0; a missing or unreadable header gives None (RFC 9110 §10.2.3).
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # an HTTP date is always GMT; a zone-less one is read as such
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def error_from_response(response: httpx.Response) -> MoralscopeError:
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
    error.retry_after = parse_retry_after(response.headers.get("Retry-After"))
    return error


def raise_for_status(response: httpx.Response) -> httpx.Response:
    """``response`` itself when it succeeded; the mapped exception otherwise (read the body first)."""
    if response.status_code >= 400:
        raise error_from_response(response)
    return response


def unreachable(base_url: str, exc: Exception) -> UnavailableError:
    """The error for a request that got no response (connection refused, reset, timed out)."""
    return UnavailableError(f"cannot reach moralscope at {base_url}: {type(exc).__name__}: {exc}")
