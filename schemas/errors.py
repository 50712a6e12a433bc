"""The one exception tree of moralscope.

::

    MoralscopeError                      code            HTTP  exit
    ├── InvalidInputError                invalid_input   422   1   bad spec, unknown category/condition, bad file
    │   └── LimitExceededError           limit_exceeded  413/429 1  body too large, too many items or queued jobs
    ├── DataError                        data_error      422   1   a dataset file missing, unreadable or corrupt
    ├── ModelResolutionError             model_error     422   1   a model that cannot be found or loaded
    ├── EngineFailure                    engine_error    500   1   inference failed (after retries)
    ├── NotFoundError                    not_found       404   1   no such job (or not yours)
    ├── AuthError                        unauthorized    401   1   missing or wrong API key
    │   └── ForbiddenError               forbidden       403   1   a cross-site or CSRF-less form/cookie request
    ├── JobFailed                        job_failed      —     1   the job ended failed (SDK, CLI)
    └── UnavailableError                 unavailable     503   3   the server, Ray or a dependency cannot be reached

Each error carries a human message that says what is wrong and how to fix it, and optionally the
``field`` (dotted path) or file at fault. The API maps them to HTTP in one handler; the CLI to exit
codes in one wrapper; the SDK raises them from the server's ``{"error": {...}}`` bodies.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# Segments pydantic adds to an error location for union members and tagged unions; they are not fields.
_UNION_TAGS = frozenset(
    {"str", "int", "float", "bool", "none", "list", "dict", "builtin", "defined"}
    | {"multiple_choice", "paired_decision", "correlation"}  # the kinds of a custom benchmark (schemas.custom)
)


def field_path(location: Sequence[Any]) -> str | None:
    """The dotted field path users read (``models.0.dtype``) of a pydantic error location.

    Union-member segments (``str``, ``defined``, ``ConditionSpec``, ``function-after[...]``) are dropped.
    """
    kept = [
        str(part)
        for part in location
        if not (isinstance(part, str) and (part in _UNION_TAGS or "[" in part or part.endswith("Spec")))
    ]
    return ".".join(kept) or None


class MoralscopeError(Exception):
    """Base of every error moralscope raises on purpose."""

    code = "error"
    http_status = 500
    exit_code = 1
    retry_after: float | None = None
    """Seconds the server asked to wait before trying again (its ``Retry-After`` header), when it said."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInputError(MoralscopeError, ValueError):
    code = "invalid_input"
    http_status = 422


class LimitExceededError(InvalidInputError):
    code = "limit_exceeded"
    http_status = 429

    def __init__(self, message: str, *, field: str | None = None, http_status: int = 429) -> None:
        super().__init__(message, field=field)
        self.http_status = http_status


class DataError(MoralscopeError):
    code = "data_error"
    http_status = 422


class ModelResolutionError(MoralscopeError):
    code = "model_error"
    http_status = 422


class EngineFailure(MoralscopeError):
    code = "engine_error"
    http_status = 500


class NotFoundError(MoralscopeError, LookupError):
    code = "not_found"
    http_status = 404


class AuthError(MoralscopeError):
    code = "unauthorized"
    http_status = 401


class ForbiddenError(AuthError):
    code = "forbidden"
    http_status = 403


class JobFailed(MoralscopeError):
    code = "job_failed"

    def __init__(self, message: str, *, job_id: str, error: str | None = None) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.error = error


class UnavailableError(MoralscopeError):
    code = "unavailable"
    http_status = 503
    exit_code = 3
