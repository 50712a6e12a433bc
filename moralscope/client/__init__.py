"""The Python SDK: ``Client`` and ``AsyncClient`` for the moralscope REST API.

Shaped like httpx: both clients share request building, response decoding and error mapping
(:class:`_Protocol`); they differ only in how a request is sent. Both accept ``transport=`` so tests
can drive the real app in-process (``httpx.ASGITransport``) as well as over a socket.

Errors are the exception tree of :mod:`schemas.errors`, built from the server's
``{"error": {"code", "message", "field"}}`` bodies. Connection errors and 503 are retried with
exponential backoff; 4xx never are. ``submit`` sends an ``Idempotency-Key`` (generated when not
given), so a retried submission never creates a second job.
"""

from moralscope.client.async_client import AsyncClient
from moralscope.client.sync_client import Client

__all__ = ["AsyncClient", "Client"]
