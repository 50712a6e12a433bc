"""Start Ray from one thread that lives as long as the process.

A local Ray's daemons (GCS, raylet, monitors) are started with ``PR_SET_PDEATHSIG``: the kernel kills
them when the *thread* that started them exits, not the process. Job threads come and go, so a Ray
started from one of them would die with its first job and take every later job down. Ray is therefore
initialised on a dedicated, never-ending worker thread; every other thread then uses it as usual.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

_owner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="moralscope-ray-owner")


def ensure_ray_once(address: str | None, *, num_cpus: int | None) -> None:
    """:func:`workers.cluster.ensure_ray` run on the Ray owner thread (a no-op once Ray is up)."""
    from workers.cluster import ensure_ray

    _owner.submit(ensure_ray, address, num_cpus=num_cpus).result()
