"""The Python SDK: ``Client`` and ``AsyncClient`` for the moralscope REST API.

Shaped like httpx, and written once for both: every operation (upload, submit, get, list, cancel, wait with its
progress bar, events, results, download, report, health) is a sans-I/O generator in
:mod:`~moralscope.client.core` that yields :mod:`~moralscope.client.steps`; :class:`Client` (:mod:`~moralscope.client.sync_client`) and
:class:`AsyncClient` (:mod:`~moralscope.client.async_client`) only perform its steps — send a request,
sleep, read the event stream — the blocking or the awaitable way. Both accept ``transport=`` so tests
can drive the real app in-process (``httpx.ASGITransport``) as well as over a socket.

- :mod:`~moralscope.client.errors`: error responses → the exception tree of :mod:`schemas.errors`
  (with the server's ``Retry-After``);
- :mod:`~moralscope.client.retrying`: which failures are retried and how long to wait (stamina:
  exponential backoff with jitter, Retry-After as a floor, 4xx never); ``submit`` keeps one
  ``Idempotency-Key`` across its retries, so a retried submission never creates a second job;
- :mod:`~moralscope.client.progress`: the rich progress bar of ``wait(progress=True)``.

Events are read with httpx-sse.
"""

from moralscope.client.async_client import AsyncClient
from moralscope.client.sync_client import Client

__all__ = ["AsyncClient", "Client"]
