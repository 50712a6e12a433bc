"""Helpers of the SDK tests: :class:`Faults`, an ASGI layer that answers planned requests with an error
status, and :func:`open_client`, which gives one test body a Client or an AsyncClient.

A fault with ``forward=True`` lets the real app handle the request first and then loses its answer
(what a proxy's 502 after a committed submission looks like), so the retry really meets a server that
has already created the job. Every request is logged with its arrival time and Idempotency-Key.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from moralscope import AsyncClient, Client

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "service"))
from service_support import free_port, tiny_spec

KEY = "sdk-test-key"
__all__ = ["KEY", "Fault", "Faults", "LiveApp", "SyncFacade", "free_port", "open_client", "tiny_spec"]


@dataclass(frozen=True)
class Fault:
    """An error answer: ``status`` (with an optional Retry-After), after the real app handled it if ``forward``."""

    status: int
    retry_after: str | None = None
    forward: bool = False


@dataclass(frozen=True)
class Seen:
    at: float
    method: str
    path: str
    idempotency_key: str | None


@dataclass
class Faults:
    """ASGI layer in front of the app: planned faults per (method, path), and a log of every request."""

    app: ASGIApp
    plan: dict[tuple[str, str], list[Fault]] = field(default_factory=dict)
    log: list[Seen] = field(default_factory=list)

    def add(self, method: str, path: str, *faults: Fault) -> None:
        self.plan.setdefault((method, path), []).extend(faults)

    def seen(self, method: str, path: str) -> list[Seen]:
        return [s for s in self.log if (s.method, s.path) == (method, path)]

    def reset(self) -> None:
        self.plan.clear()
        self.log.clear()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        method, path = scope["method"], scope["path"]
        self.log.append(Seen(time.monotonic(), method, path, headers.get("idempotency-key")))
        planned = self.plan.get((method, path))
        if not planned:
            await self.app(scope, receive, send)
            return
        fault = planned.pop(0)
        if fault.forward:

            async def lose(message: Message) -> None:
                return None

            await self.app(scope, receive, lose)
        body = json.dumps({"error": {"code": "injected", "message": f"injected {fault.status}", "field": None}})
        response_headers = [(b"content-type", b"application/json")]
        if fault.retry_after is not None:
            response_headers.append((b"retry-after", fault.retry_after.encode()))
        await send({"type": "http.response.start", "status": fault.status, "headers": response_headers})
        await send({"type": "http.response.body", "body": body.encode()})


@dataclass
class LiveApp:
    url: str
    faults: Faults
    app: Any


class SyncFacade:
    """An AsyncClient driven from synchronous test code on its own event loop (so one test body serves both)."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client
        self._loop = asyncio.new_event_loop()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            result = method(*args, **kwargs)
            if hasattr(result, "__aiter__"):
                return self._loop.run_until_complete(_collect(result))
            return self._loop.run_until_complete(result)

        return call

    def close(self) -> None:
        self._loop.run_until_complete(self._client.aclose())
        self._loop.close()


async def _collect(iterator: Any) -> list[Any]:
    return [item async for item in iterator]


@contextlib.contextmanager
def open_client(kind: str, url: str, **options: Any) -> Iterator[Any]:
    """A Client (``kind="sync"``) or an AsyncClient behind a SyncFacade (``kind="async"``), with the test key."""
    options.setdefault("api_key", KEY)
    client: Any = Client(url, **options) if kind == "sync" else SyncFacade(AsyncClient(url, **options))
    try:
        yield client
    finally:
        client.close()
