"""Refuse request bodies over ``Settings.max_body_bytes`` with 413, before anything parses them.

A pure ASGI middleware: a declared ``Content-Length`` over the limit is refused at once; otherwise the
body is read up to the limit (chunked uploads included) and replayed to the application. Routes that
stream their body under their own limit (``/v1/uploads``) are passed through (``streamed_paths``).
"""

from __future__ import annotations

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.errors import error_response

_METHODS_WITH_BODY = {"POST", "PUT", "PATCH"}


class BodySizeLimit:
    """ASGI middleware enforcing a maximum request body size."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, streamed_paths: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.streamed_paths = streamed_paths

    def _too_large(self, size: int | None) -> JSONResponse:
        shown = f"{size} bytes" if size is not None else f"more than {self.max_bytes} bytes"
        return error_response(
            413,
            "limit_exceeded",
            f"the request body is {shown}, over the limit of {self.max_bytes} bytes "
            "(MORALSCOPE_MAX_BODY_BYTES); job specs are small: select data with limits instead of inlining it",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in _METHODS_WITH_BODY
            or scope["path"].rstrip("/") in self.streamed_paths
        ):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(int(declared))(scope, receive, send)
            return
        buffered: list[Message] = []
        received = 0
        while True:
            message = await receive()
            buffered.append(message)
            if message["type"] != "http.request":
                break
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                await self._too_large(None)(scope, receive, send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            if buffered:
                return buffered.pop(0)
            return await receive()

        await self.app(scope, replay, send)
