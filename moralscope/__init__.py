"""moralscope: batch evaluation of moral self-correction in language models.

The SDK (:mod:`moralscope.client`) imports only ``schemas`` and light dependencies (httpx, httpx-sse,
stamina, polars, pyarrow, pydantic): never torch, Ray or the service, so ``pip install moralscope``
without extras is enough to use it.
"""

from moralscope.client import AsyncClient, Client
from schemas.errors import (
    AuthError,
    InvalidInputError,
    JobFailed,
    LimitExceededError,
    MoralscopeError,
    NotFoundError,
    UnavailableError,
)
from schemas.jobs import JobList, JobState, JobView
from schemas.spec import JobSpec
from schemas.uploads import UploadView

__all__ = [
    "AsyncClient",
    "AuthError",
    "Client",
    "InvalidInputError",
    "JobFailed",
    "JobList",
    "JobSpec",
    "JobState",
    "JobView",
    "LimitExceededError",
    "MoralscopeError",
    "NotFoundError",
    "UnavailableError",
    "UploadView",
]
