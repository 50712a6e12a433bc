"""Connecting to Ray: reuse, attach to a cluster, or start a private local instance.

:func:`ensure_ray` is the one place moralscope initialises Ray. The rule, in order:

1. Ray already initialised in this process → reuse it (whatever it is connected to);
2. ``address`` given, or ``$RAY_ADDRESS`` set → connect to that cluster (``host:port`` of the GCS,
   ``ray://host:port`` for Ray Client, or ``auto``). The address is probed with a plain TCP connect
   first, because ``ray.init`` on an unreachable address blocks for minutes before failing;
3. otherwise → start a new local Ray (``address="local"``, so it never silently attaches to some
   other cluster found in ``/tmp/ray``) with no dashboard, ``RAY_AUTH_MODE=disabled`` and usage
   stats off.

Ray is always initialised on one dedicated thread that lives as long as the process: a local Ray's
daemons (GCS, raylet) are started with ``PR_SET_PDEATHSIG``, so the kernel kills them when the
*thread* that started them exits. A Ray started from a short-lived thread (a job's worker thread, a
request handler) would die with it and take every later user down.

Actors import moralscope from the installed package: a local Ray starts its workers with this
process's interpreter (the virtualenv, where moralscope is installed, editable in development), and a
cluster's image installs it (deploy/). No code is shipped with the job by default; pass
``runtime_env`` (e.g. ``{"working_dir": ...}`` or ``{"py_modules": [...]}``) to ship some.
"""

from __future__ import annotations

import logging
import os
import socket
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

from schemas.errors import UnavailableError

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 10.0
"""How long a cluster address may take to accept a TCP connection before it counts as unreachable."""

_RAY_ENV_DEFAULTS = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}

_owner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="moralscope-ray-owner")
"""The thread Ray is initialised on: it never exits, so Ray's daemons live as long as the process."""


def ensure_ray(
    address: str | None = None,
    *,
    num_cpus: int | None = None,
    object_store_memory: int | None = None,
    runtime_env: dict[str, Any] | None = None,
) -> None:
    """Make sure this process is connected to Ray (see the module docstring for the rule).

    ``num_cpus`` and ``object_store_memory`` (bytes) apply only to a local Ray that this call starts.
    Raises :class:`~schemas.errors.UnavailableError` when a cluster address cannot be reached or Ray
    fails to start. Safe to call from any thread (the work happens on the Ray owner thread).
    """
    _owner.submit(
        _ensure_ray, address, num_cpus=num_cpus, object_store_memory=object_store_memory, runtime_env=runtime_env
    ).result()


def _ensure_ray(
    address: str | None,
    *,
    num_cpus: int | None,
    object_store_memory: int | None,
    runtime_env: dict[str, Any] | None,
) -> None:
    import ray

    if ray.is_initialized():
        return
    for key, value in _RAY_ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)
    target = address or os.environ.get("RAY_ADDRESS") or None
    if target:
        _connect(ray, target, runtime_env)
        return
    try:
        ray.init(
            address="local",
            num_cpus=num_cpus,
            object_store_memory=object_store_memory,
            include_dashboard=False,
            runtime_env=runtime_env,
            logging_level=logging.WARNING,
        )
    except Exception as exc:
        raise UnavailableError(
            f"could not start a local Ray instance: {exc}. Check free memory and /tmp space, "
            "or set RAY_ADDRESS to use a running cluster"
        ) from exc
    log.info("started a local Ray instance (num_cpus=%s)", num_cpus or "all")


def _connect(ray: Any, target: str, runtime_env: dict[str, Any] | None) -> None:
    if target != "auto":
        host, port = _host_port(target)
        _probe(host, port, target)
    try:
        ray.init(address=target, runtime_env=runtime_env, logging_level=logging.WARNING)
    except Exception as exc:
        raise UnavailableError(
            f"could not connect to the Ray cluster at {target!r}: {exc}. Check that the cluster is up and "
            "that the address (RAY_ADDRESS or ray_address) names its GCS (host:6379) or Ray Client "
            "(ray://host:10001) endpoint"
        ) from exc
    log.info("connected to the Ray cluster at %s", target)


def _host_port(target: str) -> tuple[str, int]:
    """The TCP endpoint of a Ray address (``host:port`` or ``ray://host:port``)."""
    parsed = urlsplit(target if "://" in target else f"ray://{target}")
    try:
        port = parsed.port
    except ValueError:
        port = None
    if not parsed.hostname or port is None:
        raise UnavailableError(
            f"Ray address must be host:port, ray://host:port or auto, got {target!r}", field="ray_address"
        )
    return parsed.hostname, port


def _probe(host: str, port: int, target: str) -> None:
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S):
            pass
    except OSError as exc:
        raise UnavailableError(
            f"the Ray cluster at {target!r} cannot be reached ({exc.strerror or exc}); check RAY_ADDRESS "
            "(or ray_address), that the head node is running and that the port is open"
        ) from exc


def shutdown_ray() -> None:
    """Disconnect from Ray (stopping a local instance this process started); a no-op when not connected."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
