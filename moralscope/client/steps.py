"""The steps an SDK operation asks its client to perform, and the loop that drives an operation.

An operation (:mod:`moralscope.client.core`) is a generator that yields :data:`Step`\\ s and returns
its result; :class:`Steps` feeds each step's reply (or its exception) back into it. The clients run
``for step in steps: steps.reply(perform(step))`` — blocking or awaiting ``perform``.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeAlias, TypeVar

from schemas.jobs import JobView

T = TypeVar("T")
STREAM_IDLE_SECONDS = 60.0
"""A stream silent this long is presumed dead (the server pings every 15 s); ``wait`` then polls."""


@dataclass(frozen=True, slots=True)
class Call:
    """Send one request; the reply is the response (an error status is raised as its exception)."""

    method: str
    path: str
    params: Mapping[str, Any] | None = None
    json: Any = None
    content: bytes | None = None
    """A raw body (a file's bytes), instead of ``json``."""
    headers: Mapping[str, str] | None = None

    def options(self) -> dict[str, Any]:
        """The keyword arguments of ``httpx.Client.request`` / ``httpx.AsyncClient.request``."""
        return {"params": self.params, "json": self.json, "content": self.content, "headers": self.headers}


@dataclass(frozen=True, slots=True)
class Pause:
    """Sleep; the reply is None."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Follow:
    """Read ``job_id``'s events, handing each one's view to ``until``; stop when it returns True or the stream ends.

    ``idle_timeout`` bounds the wait for the next bytes (keepalive pings count); the reply is None.
    """

    job_id: str
    until: Callable[[JobView], bool]
    idle_timeout: float | None = STREAM_IDLE_SECONDS


Step: TypeAlias = Call | Pause | Follow
Operation: TypeAlias = Generator[Step, Any, T]


class Steps(Generic[T]):
    """Drives an operation: iterate for its steps, :meth:`reply` or :meth:`fail` each, then read :attr:`result`."""

    def __init__(self, operation: Operation[T]) -> None:
        self._operation = operation
        self._reply: Any = None
        self._error: Exception | None = None
        self._done = False
        self._result: T | None = None

    def __iter__(self) -> Steps[T]:
        return self

    def __next__(self) -> Step:
        reply, error = self._reply, self._error
        self._reply, self._error = None, None
        try:
            return self._operation.send(reply) if error is None else self._operation.throw(error)
        except StopIteration as stop:
            self._done, self._result = True, stop.value
            raise StopIteration from None

    def reply(self, value: Any) -> None:
        self._reply = value

    def fail(self, error: Exception) -> None:
        self._error = error

    @property
    def result(self) -> T:
        if not self._done:
            raise RuntimeError("the operation has not finished")
        return self._result  # type: ignore[return-value]

    def close(self) -> None:
        """End an unfinished operation (its ``finally`` blocks run, e.g. the progress bar stops)."""
        self._operation.close()
