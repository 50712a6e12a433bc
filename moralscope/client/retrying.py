"""When and how long the SDK waits before trying a request again (with stamina).

Retried: a request that got no answer (connection refused or reset, timeout) and 502/503/504 (a proxy
or the server briefly unavailable); 429 only when the server says when to come back (``Retry-After``).
Never retried: every other 4xx, which says the request itself is wrong and would fail again.

Waits grow exponentially with random jitter: ``backoff * 2**(n-1) + uniform(0, jitter)``, capped at
``max_wait``. A ``Retry-After`` from the server is a floor, not a suggestion: the wait is
``retry_after + uniform(0, jitter)`` (the jitter spreads clients told the same moment), and a server
asking for more than ``max_wait`` is taken at its word: the client gives up at once and raises the error,
whose ``retry_after`` says how long to wait. At most ``retries`` retries follow the first attempt.

A retried ``POST /v1/jobs`` is safe: every submission carries an ``Idempotency-Key`` that stays the
same across its retries, so the server returns the job it already made instead of a second one.

``stamina.set_active(False)`` turns retries off process-wide (e.g. in a test suite); each scheduled
retry is reported through stamina's instrumentation (standard ``logging`` by default).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import stamina

from schemas.errors import LimitExceededError, UnavailableError


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many times and how long to wait (see the module docstring)."""

    retries: int = 3
    """Retries after the first attempt (0: no retry)."""
    backoff: float = 0.5
    """The first wait, in seconds; doubled for each later retry."""
    max_wait: float = 30.0
    """The longest single wait, in seconds (a longer Retry-After makes the client give up)."""
    jitter: float | None = None
    """The random extra wait's upper bound, in seconds (default: ``backoff``)."""

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ValueError(f"retries must be >= 0, got {self.retries}")
        if self.backoff < 0 or self.max_wait < 0 or (self.jitter is not None and self.jitter < 0):
            raise ValueError(
                f"backoff, max_wait and jitter must be >= 0, got {self.backoff}, {self.max_wait}, {self.jitter}"
            )

    @property
    def spread(self) -> float:
        """The jitter bound in effect."""
        return self.backoff if self.jitter is None else self.jitter

    def decide(self, error: Exception) -> bool | float:
        """stamina's backoff hook: False (raise now), True (exponential wait) or the seconds to wait."""
        if not isinstance(error, UnavailableError | LimitExceededError):
            return False
        hint = error.retry_after
        if isinstance(error, LimitExceededError) and (error.http_status != 429 or hint is None):
            return False  # 413, or 429 without a date: the request would fail again right away
        if hint is None:
            return True
        if hint > self.max_wait:
            return False
        return min(self.max_wait, hint + random.uniform(0, self.spread))  # >= hint, as hint <= max_wait

    def caller(self) -> stamina.BoundRetryingCaller:
        """A reusable caller that runs a callable under this policy."""
        return stamina.RetryingCaller(
            attempts=self.retries + 1,
            timeout=None,  # bounded by attempts × max_wait instead
            wait_initial=self.backoff,
            wait_max=self.max_wait,
            wait_jitter=self.spread,
        ).on(self.decide)

    def async_caller(self) -> stamina.BoundAsyncRetryingCaller:
        """The same for coroutine functions."""
        return stamina.AsyncRetryingCaller(
            attempts=self.retries + 1,
            timeout=None,
            wait_initial=self.backoff,
            wait_max=self.max_wait,
            wait_jitter=self.spread,
        ).on(self.decide)
