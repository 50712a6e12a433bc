"""Health, readiness and Prometheus metrics of the service.

Metrics are read from the job store at scrape time (a custom collector), so they are right after a
restart and agree with what the API shows: jobs by state, queue depth, rows scored, reasoning samples
generated, error rows, tokens requested and computed (their ratio is the engines' prefix-cache hit rate)
and the current throughput of running jobs.

Readiness checks the store and Ray: the Ray the server's job executor is connected to (a local Ray whose
daemons died counts as unreachable; see :mod:`service.runner.executor`), or, before any job ran, the
configured cluster address.
"""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from schemas.errors import MoralscopeError, UnavailableError
from schemas.jobs import JobState
from service.runner.executor import RayStatus
from service.settings import Settings
from service.store import JobStore
from service.views import job_view


class StoreCollector(Collector):
    """Prometheus metrics computed from the job store."""

    def __init__(self, store: JobStore) -> None:
        self.store = store

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        by_state = self.store.jobs_by_state()
        jobs = GaugeMetricFamily("moralscope_jobs", "Jobs by state.", labels=["state"])
        for state, count in sorted(by_state.items()):
            jobs.add_metric([state], count)
        yield jobs
        yield GaugeMetricFamily("moralscope_queue_depth", "Jobs queued and not started.", value=by_state["queued"])
        totals = self.store.shard_totals()
        yield CounterMetricFamily(
            "moralscope_rows_scored", "Sample rows scored (finished score shards).", value=totals["score_requests"]
        )
        yield CounterMetricFamily(
            "moralscope_reasoning_generated",
            "Chain-of-thought reasoning samples generated (finished reason shards).",
            value=totals["reason_requests"],
        )
        yield CounterMetricFamily(
            "moralscope_error_rows",
            "Requests that ended as error rows (the engine could not serve them), in finished shards.",
            value=totals["errors"],
        )
        yield CounterMetricFamily(
            "moralscope_tokens_processed",
            "Prompt, candidate and generated tokens requested (finished shards).",
            value=totals["tokens"],
        )
        yield CounterMetricFamily(
            "moralscope_tokens_computed",
            "Of the tokens requested, those the engines computed; the rest came from their prefix caches.",
            value=totals["computed_tokens"],
        )
        hit_rate = 1.0 - totals["computed_tokens"] / totals["tokens"] if totals["tokens"] else 0.0
        yield GaugeMetricFamily(
            "moralscope_prefix_cache_hit_rate",
            "1 - tokens computed / tokens requested, over finished shards (0 before any).",
            value=hit_rate,
        )
        running, _ = self.store.list_jobs(owner=None, state=JobState.IN_PROGRESS, limit=1000)
        views = [job_view(self.store, job, include_spec=False) for job in running]
        rate = sum(view.tokens_per_second or 0.0 for view in views)
        yield GaugeMetricFamily(
            "moralscope_tokens_per_second", "Requested tokens per second of running jobs.", value=rate
        )
        computed = sum(m.computed_tokens_per_second or 0.0 for view in views for m in view.models)
        yield GaugeMetricFamily(
            "moralscope_computed_tokens_per_second", "Computed tokens per second of running jobs.", value=computed
        )


def prometheus_text(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)


def make_registry(store: JobStore) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    registry.register(StoreCollector(store))
    return registry


def _ray_check(settings: Settings, ray_status: RayStatus | None) -> str:
    """Whether Ray can be reached (without starting a local Ray just to answer a probe)."""
    if ray_status is not None and (ray_status.address is not None or not ray_status.ok):
        if not ray_status.ok:
            raise UnavailableError(ray_status.detail)
        return ray_status.detail
    if "ray" in sys.modules:
        ray = sys.modules["ray"]
        if ray.is_initialized():
            return "connected"
    address = settings.effective_ray_address
    if not address:
        return "local (started with the first job)"
    if address == "auto":
        return "auto (connected when a job starts)"
    parts = urlsplit(address if "://" in address else f"ray://{address}")
    if not parts.hostname or not parts.port:
        raise UnavailableError(f"Ray address {address!r} has no host:port; set MORALSCOPE_RAY_ADDRESS to host:port")
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=2):
            pass
    except OSError as exc:
        raise UnavailableError(f"Ray at {address} is unreachable: {exc}") from exc
    return f"reachable at {address}"


def readiness(
    store: JobStore, settings: Settings, *, runner_alive: bool | None, ray_status: RayStatus | None = None
) -> dict[str, object]:
    """Every readiness check; raises UnavailableError naming the failed ones.

    ``ray_status`` is the job executor's view of Ray (None when this process runs no jobs).
    """
    checks: dict[str, str] = {}
    failures: list[str] = []
    started = time.monotonic()
    for name in ("store", "ray"):
        try:
            checks[name] = _store_check(store) if name == "store" else _ray_check(settings, ray_status)
        except MoralscopeError as exc:
            failures.append(f"{name}: {exc.message}")
    if runner_alive is False:
        failures.append("runner: the job runner thread has stopped; restart the service")
    elif runner_alive:
        checks["runner"] = "running"
    if failures:
        raise UnavailableError("not ready: " + "; ".join(failures))
    return {"status": "ready", "checks": checks, "seconds": round(time.monotonic() - started, 3)}


def _store_check(store: JobStore) -> str:
    store.db.check_writable()
    return f"writable ({store.db.location})"
