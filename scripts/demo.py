"""The quickstart through the SDK, as `make demo` runs it: start a local server, submit, wait, print.

    python scripts/demo.py [SPEC] [--port P]

Starts `moralscope serve` on 127.0.0.1 in the background (its own store and results under
./moralscope-demo/), submits the spec (default examples/quickstart.yaml) with the Python SDK, follows
it with a progress bar, prints the metrics table (each benchmark × condition, with 95% intervals)
and where the Parquet files are, then stops the server.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from moralscope import Client, UnavailableError
from moralscope.cli.metrics_table import print_metrics_table

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_healthy(client: Client, server: subprocess.Popen[bytes], log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"the server exited with {server.returncode}; its log: {log}\n{log.read_text()[-3000:]}")
        with contextlib.suppress(UnavailableError):
            client.health()
            return
        time.sleep(0.5)
    sys.exit(f"the server did not start within {timeout:.0f} s; its log: {log}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("spec", nargs="?", default=str(ROOT / "examples" / "quickstart.yaml"))
    parser.add_argument("--port", type=int, default=None, help="Port of the demo server (default: a free one).")
    parser.add_argument("--dir", default=str(ROOT / "moralscope-demo"), help="Store, results and server log.")
    args = parser.parse_args()

    workdir = Path(args.dir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    port = args.port or _free_port()
    env = {
        **os.environ,
        "MORALSCOPE_STORE_PATH": str(workdir / "jobs.sqlite3"),
        "MORALSCOPE_RESULTS_URI": str(workdir / "results"),
        "MORALSCOPE_HOST": "127.0.0.1",
        "MORALSCOPE_PORT": str(port),
    }
    log = workdir / "server.log"
    print(f"starting the moralscope server on http://127.0.0.1:{port} (log: {log})", flush=True)
    with log.open("ab") as log_file:
        server = subprocess.Popen(
            [sys.executable, "-m", "moralscope.cli", "serve"],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        with Client(f"http://127.0.0.1:{port}", timeout=60, retries=0) as probe:
            _wait_healthy(probe, server, log)
        with Client(f"http://127.0.0.1:{port}", timeout=60) as client:
            job = client.submit(args.spec)
            print(f"submitted {args.spec} as job {job.id}", flush=True)
            started = time.monotonic()
            job = client.wait(job.id, progress=True)
            print(f"job {job.id} {job.state.value} in {time.monotonic() - started:,.0f} s", flush=True)
            metrics = client.results(job.id, table="metrics")
        print_metrics_table(metrics.filter(metrics["slice"] == "overall").to_dicts())
        print(f"samples: {job.results.samples}\nmetrics: {job.results.metrics}\nreport:  {job.results.report}")
    finally:
        # Ctrl-C, as a person would stop it: uvicorn shuts down and Ray's daemons exit with their owner
        with contextlib.suppress(ProcessLookupError):
            server.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(60)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)  # anything left in the server's session


if __name__ == "__main__":
    main()
