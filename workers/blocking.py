"""The blocking form of an engine pool: a list of requests in, their results out, in order.

For callers that want one call and its results (the CLI, benchmarks, tests), on top of the pool's
streaming :meth:`~workers.pool.EnginePool.submit` / :meth:`~workers.pool.EnginePool.poll`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from workers.progress import Kind, PoolCancelled, PoolProgress

if TYPE_CHECKING:
    from workers.pool import EnginePool

POLL_S = 0.25
"""How long a blocking call waits between looks at its cancellation flag."""


def run_blocking(
    pool: EnginePool,
    kind: Kind,
    requests: Sequence[Any],
    progress: Callable[[PoolProgress], None] | None,
    cancelled: Callable[[], bool] | None,
) -> list[Any]:
    """Every request through ``pool``, cut into batches of its ``batch_size``; results in request order.

    ``progress`` is called after every finished batch with cumulative, monotonic :class:`PoolProgress`;
    ``cancelled`` is checked between polls: when it returns true, the pool's work is cancelled and
    :class:`PoolCancelled` raised. Not to be mixed with other submissions to the same pool.
    """
    size = pool.batch_size
    tickets = {pool.submit(kind, requests[i : i + size]) for i in range(0, len(requests), size)}
    outputs: dict[int, list[Any]] = {}
    done = tokens = computed = errors = 0
    retries_before = pool.counters.retries + pool.counters.splits
    started = time.monotonic()
    try:
        while len(outputs) < len(tickets):
            if cancelled is not None and cancelled():
                raise PoolCancelled(done, len(requests))
            for completion in pool.poll(POLL_S):
                if completion.ticket not in tickets:
                    continue
                outputs[completion.ticket] = completion.results
                done += len(completion.results)
                tokens += completion.tokens_requested
                computed += completion.tokens_computed
                errors += completion.errors
                if progress is not None:
                    elapsed = time.monotonic() - started
                    progress(
                        PoolProgress(
                            kind=kind,
                            prompts_done=done,
                            prompts_total=len(requests),
                            tokens_processed=tokens,
                            tokens_computed=computed,
                            tokens_per_s=tokens / elapsed if elapsed > 0 else 0.0,
                            elapsed_s=elapsed,
                            batches_done=len(outputs),
                            batches_total=len(tickets),
                            retries=pool.counters.retries + pool.counters.splits - retries_before,
                            errors=errors,
                        )
                    )
    except BaseException:
        pool.cancel()
        raise
    return [result for ticket in sorted(outputs) for result in outputs[ticket]]
