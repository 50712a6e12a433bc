"""``moralscope serve`` (the REST API) and ``moralscope run`` (one job in this process, no HTTP)."""

from __future__ import annotations

import ipaddress
import logging
import math
import sys
from typing import Any

import click

from moralscope.cli.errors import print_json, run_command
from moralscope.cli.metrics_table import print_failed_cells, print_metrics_table
from schemas.errors import InvalidInputError, JobFailed
from schemas.jobs import JobState, JobView


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@click.command()
@click.option("--host", default=None, help="Interface to listen on (default: MORALSCOPE_HOST, 127.0.0.1).")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Port (default: MORALSCOPE_PORT, 8000).")
@run_command
def serve(host: str | None, port: int | None) -> None:
    """Serve the REST API (OpenAPI at /docs) and run submitted jobs in the background."""
    import uvicorn

    from service.app import create_app
    from service.settings import get_settings

    settings = get_settings()
    host = host or settings.host
    port = port or settings.port
    try:
        keys = settings.all_api_keys()
    except ValueError as exc:
        raise InvalidInputError(str(exc), field="api_keys_file") from exc
    if not keys and not is_loopback(host) and not settings.allow_unauthenticated_remote:
        raise InvalidInputError(
            f"refusing to listen on {host} without API keys: anyone who can reach it could run jobs. "
            "Set MORALSCOPE_API_KEYS (or MORALSCOPE_API_KEYS_FILE), listen on 127.0.0.1, or set "
            "MORALSCOPE_ALLOW_UNAUTHENTICATED_REMOTE=true on a private network",
            field="host",
        )
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(settings)
    click.echo(f"moralscope API on http://{host}:{port} (docs: /docs; keys: {'yes' if keys else 'none'})", err=True)
    uvicorn.run(app, host=host, port=port, log_level=settings.log_level.lower(), timeout_graceful_shutdown=30)


def overall_metrics(location: str) -> list[dict[str, Any]]:
    """The metrics rows of the ``overall`` slice (what the summary table shows); NaN becomes None."""
    import pyarrow.compute as pc

    from service.results import JobFiles

    table = JobFiles(location).read_parquet("metrics.parquet")
    rows = table.filter(pc.equal(table["slice"], "overall")).to_pylist()
    return [{k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()} for row in rows]


@click.command()
@click.argument("spec_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "out", default=None, help="Results folder or URI (default: MORALSCOPE_RESULTS_URI/<job id>).")
@click.option("--json", "as_json", is_flag=True, help="Print the final job and its overall metrics as JSON.")
@run_command
def run(spec_file: str, out: str | None, as_json: bool) -> None:
    """Run the job in SPEC_FILE in this process (no server) and print its metrics.

    Running the same spec into the same --out again resumes an interrupted run.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from moralscope.specfile import load_job_spec
    from service.local import execute_local_run, open_local_run
    from service.settings import get_settings

    spec = load_job_spec(spec_file)
    local = open_local_run(spec, settings=get_settings(), out=out)
    console = Console(stderr=True)
    if local.resumed:
        console.print(f"resuming job {local.job.id} from its last finished shard")
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=console,
        disable=as_json,
    ) as progress:
        task = progress.add_task(f"job {local.job.id}", total=None, detail="")

        def update() -> None:
            view = local.view()
            phases = ", ".join(f"{m.model}: {m.phase}" for m in view.models)
            rate = f" {view.tokens_per_second:,.0f} tok/s" if view.tokens_per_second else ""
            progress.update(
                task,
                total=view.request_counts.total or None,
                completed=view.request_counts.completed,
                detail=f"{view.state.value} ({phases}){rate}",
            )

        try:
            view = execute_local_run(local, on_progress=update)
        except KeyboardInterrupt:
            console.print(f"interrupted; run the same command again to resume job {local.job.id}")
            sys.exit(130)
    _report(view, as_json=as_json)


def _report(view: JobView, *, as_json: bool) -> None:
    metrics = overall_metrics(view.results.location) if view.results.metrics and view.results.location else []
    if as_json:
        print_json({"job": view, "metrics": metrics})
    if view.state == JobState.FAILED:
        raise JobFailed(f"job {view.id} failed: {view.error}", job_id=view.id, error=view.error)
    if view.state != JobState.COMPLETED:
        raise JobFailed(f"job {view.id} ended {view.state.value}", job_id=view.id)
    if not as_json:
        print_metrics_table(metrics)
        print_failed_cells(view.failed_cells)
        click.echo(f"results: {view.results.location}", err=True)
