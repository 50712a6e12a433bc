"""Load on the control plane: N concurrent clients against two API replicas on one job store.

Starts (on 127.0.0.1) a PostgreSQL server and moto's S3 server (unless ``--store-url`` /
``--results-uri`` name existing ones), a private Ray head and two ``moralscope serve`` replicas that
run jobs on a fast fake engine (the model does not matter here: this measures the API, the store and
the results path, not inference). A few jobs are run to completion first, so that there is something
to download. Then ``--clients`` clients loop for ``--duration`` seconds, each request going to a
replica picked at random:

- ``submit``   POST /v1/jobs (a tiny job; see below for what happens to it)
- ``poll``     GET /v1/jobs/{id}
- ``list``     GET /v1/jobs?limit=20
- ``events``   GET /v1/jobs/{id}/events of a finished job (the whole stream, to its ``end`` event)
- ``download`` GET /v1/jobs/{id}/results/samples (streamed from the bucket)

The jobs submitted under load name a model that cannot be resolved (``--run-submitted`` makes them
real fake-engine jobs instead): the replicas' runners claim each one, validate it and record its
failure, which is the store traffic of running jobs without their compute. In a deployment the compute
is Ray's, on other machines; on one machine a job's actor processes would compete with the replicas
for the same cores and the figures would measure that instead.

Each client keeps its connection to one replica (as behind a load balancer with keep-alive); the
clients are spread evenly over the replicas. A client waits ``--think`` seconds (exponentially
distributed, mean 0.5 s) after each response, like a user or the SDK polling, and before its first
request, so that clients do not all start at one instant; ``--think 0`` saturates the replicas instead
(then latency only measures queueing: clients ÷ throughput). Clients are built before the clock starts.

and prints requests/s, p50/p99 latency per endpoint and the errors (any non-2xx or transport
error). Target: 0 errors and p99 < 100 ms for the reads (poll, list) at 50 clients. A benchmark, not a
test: figures depend on the machine and on what else runs on it (the load average is printed).

    python -m bench.load --clients 50 --duration 30
    python -m bench.load --clients 50 --duration 30 --think 0     # saturation throughput
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
from contextlib import AsyncExitStack, ExitStack
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import httpx  # noqa: E402

from tests.service.service_support import LiveServer, tiny_spec, wait_until  # noqa: E402
from tests.support import fake_engine  # noqa: E402
from tests.support.postgres import PostgresServer  # noqa: E402
from tests.support.ray_head import RayHead  # noqa: E402
from tests.support.s3 import MotoS3Server  # noqa: E402

MIX = {"submit": 0.1, "poll": 0.35, "list": 0.2, "events": 0.15, "download": 0.2}
SPEC = tiny_spec(
    models=[{"name": "smollm2-135m-instruct", "cpus_per_actor": 0.5}],
    benchmarks={"winogender": {"limit": 2}},
    conditions=["Q"],
)
UNRESOLVABLE_SPEC = {**SPEC, "models": [{"name": "moralscope-bench/no-such-model"}]}


class Load:
    def __init__(self, urls: list[str], finished: list[str], *, think: float, submit: dict[str, Any]) -> None:
        self.urls = urls
        self.think = think
        self.submit = submit
        self.finished = finished
        self.known = list(finished)
        self.latency: dict[str, list[float]] = {name: [] for name in MIX}
        self.errors: dict[str, int] = dict.fromkeys(MIX, 0)
        self.error_examples: list[str] = []

    async def request(self, client: httpx.AsyncClient, url: str, name: str) -> None:
        started = time.perf_counter()
        try:
            if name == "submit":
                response = await client.post(f"{url}/v1/jobs", json=self.submit)
                if response.status_code == 201:
                    self.known.append(response.json()["id"])
            elif name == "poll":
                response = await client.get(f"{url}/v1/jobs/{random.choice(self.known)}")
            elif name == "list":
                response = await client.get(f"{url}/v1/jobs", params={"limit": 20})
            elif name == "events":
                async with client.stream("GET", f"{url}/v1/jobs/{random.choice(self.finished)}/events") as response:
                    body = b"".join([chunk async for chunk in response.aiter_bytes()])
                    if response.is_success and b"event: end" not in body:
                        raise RuntimeError("the event stream ended without an end event")
            else:
                async with client.stream(
                    "GET", f"{url}/v1/jobs/{random.choice(self.finished)}/results/samples"
                ) as response:
                    async for _ in response.aiter_bytes():
                        pass
            ok = response.is_success
            detail = f"HTTP {response.status_code}"
        except (httpx.HTTPError, RuntimeError) as exc:
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        elapsed = time.perf_counter() - started
        if ok:
            self.latency[name].append(elapsed)
        else:
            self.errors[name] += 1
            if len(self.error_examples) < 5:
                self.error_examples.append(f"{name}: {detail}")

    async def client(self, client: httpx.AsyncClient, url: str, deadline: float) -> None:
        names, weights = list(MIX), list(MIX.values())
        if self.think:  # clients start as they go on, a pause apart, not all at the same instant
            await asyncio.sleep(random.expovariate(1 / self.think))
        while time.monotonic() < deadline:
            await self.request(client, url, random.choices(names, weights)[0])
            if self.think:
                await asyncio.sleep(random.expovariate(1 / self.think))

    async def run(self, clients: int, duration: float) -> float:
        urls = [self.urls[i % len(self.urls)] for i in range(clients)]
        # Every client is built before the clock starts: building an httpx client loads its TLS context
        # (~25 ms of CPU here), and 50 of them built inside the timed loop would stall it for over a second,
        # a queue the servers never saw (it showed up as the first requests' p99).
        async with AsyncExitStack() as stack:
            built = [await stack.enter_async_context(httpx.AsyncClient(timeout=60)) for _ in urls]
            started = time.monotonic()
            await asyncio.gather(*(self.client(c, url, started + duration) for c, url in zip(built, urls, strict=True)))
            return time.monotonic() - started


def _percentile(values: list[float], q: float) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def report(load: Load, elapsed: float, args: argparse.Namespace, where: dict[str, str]) -> dict[str, Any]:
    rows = []
    for name in MIX:
        values = load.latency[name]
        rows.append(
            {
                "endpoint": name,
                "requests": len(values) + load.errors[name],
                "per_second": round((len(values) + load.errors[name]) / elapsed, 1),
                "p50_ms": round(_percentile(values, 50) * 1000, 1),
                "p99_ms": round(_percentile(values, 99) * 1000, 1),
                "errors": load.errors[name],
            }
        )
    total = sum(r["requests"] for r in rows)
    return {
        "clients": args.clients,
        "think_s": args.think,
        "submitted_jobs": "run" if args.run_submitted else "fail at validation",
        "duration_s": round(elapsed, 1),
        "replicas": 2,
        **where,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "requests_per_second": round(total / elapsed, 1),
        "errors": sum(r["errors"] for r in rows),
        "endpoints": rows,
        "error_examples": load.error_examples,
    }


def print_report(result: dict[str, Any]) -> None:
    print(
        f"{result['clients']} clients (think {result['think_s']} s) for {result['duration_s']} s against "
        f"{result['replicas']} replicas (store {result['store']}, results {result['results']}; submitted jobs "
        f"{result['submitted_jobs']}); load average {result['load_average']}"
    )
    print(f"{'endpoint':<10} {'requests':>9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for row in result["endpoints"]:
        print(
            f"{row['endpoint']:<10} {row['requests']:>9} {row['per_second']:>8} {row['p50_ms']:>8} "
            f"{row['p99_ms']:>8} {row['errors']:>7}"
        )
    print(f"{'total':<10} {'':>9} {result['requests_per_second']:>8} {'':>8} {'':>8} {result['errors']:>7}")
    for example in result["error_examples"]:
        print(f"  error: {example}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of load")
    parser.add_argument("--think", type=float, default=0.5, help="mean pause of a client between requests (s)")
    parser.add_argument("--finished-jobs", type=int, default=4, help="jobs run to completion before the load")
    parser.add_argument("--store-url", help="an existing job store (default: a PostgreSQL server started here)")
    parser.add_argument("--results-uri", help="where results go (default: a bucket on a moto server started here)")
    parser.add_argument(
        "--run-submitted", action="store_true", help="run the jobs submitted under load (fake engine, local Ray)"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    logs = Path(os.environ.get("TMPDIR", "/tmp")) / f"moralscope-load-{os.getpid()}"
    logs.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        env = {
            "MORALSCOPE_ENGINE_FACTORY": fake_engine.SETTING,
            "MORALSCOPE_DOWNLOAD": "false",
            "MORALSCOPE_CONCURRENCY": "1",
            "MORALSCOPE_MAX_QUEUED_JOBS_PER_KEY": "1000000",
            "MORALSCOPE_LOG_LEVEL": "WARNING",
            "MORALSCOPE_RAY_ADDRESS": stack.enter_context(RayHead(num_cpus=2)).address,
        }
        env["MORALSCOPE_STORE_URL"] = args.store_url or stack.enter_context(PostgresServer()).database("load")
        if args.results_uri:
            env["MORALSCOPE_RESULTS_URI"] = args.results_uri
        else:
            s3 = stack.enter_context(MotoS3Server())
            env |= s3.environment()
            env["MORALSCOPE_RESULTS_URI"] = f"{s3.create_bucket('load')}/results"
        replicas = [LiveServer(env, logs / f"replica-{i}.log") for i in (1, 2)]
        for replica in replicas:
            stack.callback(replica.kill)
        urls = [r.url for r in replicas]
        finished = [
            httpx.post(f"{urls[0]}/v1/jobs", json=SPEC, timeout=60).json()["id"] for _ in range(args.finished_jobs)
        ]

        def all_completed() -> bool:
            states = {httpx.get(f"{urls[1]}/v1/jobs/{j}", timeout=60).json()["state"] for j in finished}
            if states & {"failed", "cancelled"}:
                raise RuntimeError(f"a warm-up job did not complete: {states}; see {logs}")
            return states == {"completed"}

        wait_until(all_completed, timeout=600, interval=1, what="the warm-up jobs")
        load = Load(urls, finished, think=args.think, submit=SPEC if args.run_submitted else UNRESOLVABLE_SPEC)
        elapsed = asyncio.run(load.run(args.clients, args.duration))
        where = {
            "store": "given" if args.store_url else "postgresql (local)",
            "results": "given" if args.results_uri else "s3 (moto, local)",
        }
        result = report(load, elapsed, args, where)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_report(result)
    return 0 if result["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
