"""Client-side commands: talk to a moralscope server through the SDK.

The server is ``--url`` or ``$MORALSCOPE_URL`` (default http://127.0.0.1:8000); the key is ``--api-key``
or ``$MORALSCOPE_API_KEY``. Every command has ``--json`` for scripts.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from moralscope.cli.errors import print_json, print_table, run_command
from moralscope.cli.metrics_table import model_rates, print_failed_cells, print_metrics_table
from moralscope.client import Client
from schemas.errors import InvalidInputError, JobFailed
from schemas.jobs import JobState, JobView

F = TypeVar("F", bound=Callable[..., Any])


def server_options(function: F) -> F:
    """--url, --api-key and --json, shared by every client command."""
    function = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(function)
    function = click.option(
        "--api-key", envvar="MORALSCOPE_API_KEY", default=None, help="API key (default: $MORALSCOPE_API_KEY)."
    )(function)
    return click.option(
        "--url",
        envvar="MORALSCOPE_URL",
        default=None,
        help="Server URL (default: $MORALSCOPE_URL or http://127.0.0.1:8000).",
    )(function)


def _client(url: str | None, api_key: str | None) -> Client:
    return Client(url, api_key=api_key)


def _job_rows(views: list[JobView]) -> list[list[str]]:
    rows = []
    for view in views:
        counts = view.request_counts
        rows.append(
            [
                view.id,
                view.name or "",
                view.state.value,
                f"{counts.completed}/{counts.total}" + (f" ({counts.failed} failed)" if counts.failed else ""),
                ", ".join(f"{m.model}: {m.phase}" for m in view.models),
                view.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                view.error or "",
            ]
        )
    return rows


def _print_jobs(views: list[JobView], title: str | None = None) -> None:
    print_table(["id", "name", "state", "prompts", "models", "created", "error"], _job_rows(views), title=title)


@click.command()
@click.argument("spec_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--wait", is_flag=True, help="Wait for the job to end, with a progress bar, then print its metrics.")
@click.option("--idempotency-key", default=None, help="Resubmitting with the same key returns the same job.")
@server_options
@run_command
def submit(
    spec_file: str, wait: bool, idempotency_key: str | None, url: str | None, api_key: str | None, as_json: bool
) -> None:
    """Submit the job in SPEC_FILE (YAML or JSON) to the server."""
    with _client(url, api_key) as client:
        view = client.submit(spec_file, idempotency_key=idempotency_key)
        if not wait:
            print_json(view) if as_json else click.echo(view.id)
            return
        click.echo(f"submitted job {view.id}", err=True)
        try:
            view = client.wait(view.id, progress=not as_json)
        except JobFailed as failed:
            if as_json:
                print_json(client.get(view.id))
            raise failed
        metrics = client.results(view.id, table="metrics") if view.state == JobState.COMPLETED else None
        if as_json:
            print_json({"job": view, "metrics": metrics.to_dicts() if metrics is not None else []})
        elif metrics is not None:
            print_metrics_table(metrics.filter(metrics["slice"] == "overall").to_dicts())
            print_failed_cells(view.failed_cells)
            click.echo(f"results: {view.results.location}", err=True)
        if view.state != JobState.COMPLETED:
            raise JobFailed(f"job {view.id} ended {view.state.value}", job_id=view.id)


@click.command()
@click.argument("job_id")
@server_options
@run_command
def status(job_id: str, url: str | None, api_key: str | None, as_json: bool) -> None:
    """Show one job: state, per-model phase, progress, error and result locations."""
    with _client(url, api_key) as client:
        view = client.get(job_id)
    if as_json:
        print_json(view)
        return
    _print_jobs([view])
    for model in view.models:
        click.echo(model_rates(model))
    print_failed_cells(view.failed_cells)
    if view.tokens_per_second:
        eta = f", ETA {view.eta_seconds:,.0f} s" if view.eta_seconds is not None else ""
        click.echo(f"{view.tokens_processed:,} tokens, {view.tokens_per_second:,.0f} tokens/s{eta}")
    if view.results.location:
        click.echo(f"results: {view.results.location}")


@click.command("list")
@click.option("--state", type=click.Choice([s.value for s in JobState]), default=None, help="Only jobs in this state.")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.option("--offset", type=click.IntRange(0), default=0, show_default=True)
@server_options
@run_command
def list_jobs(state: str | None, limit: int, offset: int, url: str | None, api_key: str | None, as_json: bool) -> None:
    """List jobs, newest first."""
    with _client(url, api_key) as client:
        page = client.list(state, limit=limit, offset=offset)
    if as_json:
        print_json(page)
    else:
        _print_jobs(page.data, title=f"{len(page.data)} of {page.count} jobs")


@click.command()
@click.argument("job_id")
@server_options
@run_command
def cancel(job_id: str, url: str | None, api_key: str | None, as_json: bool) -> None:
    """Cancel a job: dispatching stops, finished shards are kept."""
    with _client(url, api_key) as client:
        view = client.cancel(job_id)
    print_json(view) if as_json else click.echo(f"{view.id}: {view.state.value}")


@click.command()
@click.argument("job_id")
@click.option("--table", type=click.Choice(["samples", "metrics"]), default="metrics", show_default=True)
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Save the Parquet file here."
)
@server_options
@run_command
def results(job_id: str, table: str, out: Path | None, url: str | None, api_key: str | None, as_json: bool) -> None:
    """Fetch a finished job's results: print the metrics table, or save a Parquet file with --out."""
    with _client(url, api_key) as client:
        if out is not None:
            path = client.download(job_id, out, table="metrics" if table == "metrics" else "samples")
            print_json({"path": str(path)}) if as_json else click.echo(str(path))
            return
        frame = client.results(job_id, table="metrics" if table == "metrics" else "samples")
    if as_json:
        print_json(frame.to_dicts())
    elif table == "metrics":
        print_metrics_table(frame.filter(frame["slice"] == "overall").to_dicts())
    else:
        click.echo(frame)


@click.command()
@click.argument("job_id", required=False)
@click.option(
    "--job",
    "jobs",
    multiple=True,
    help="A finished job; repeat for one report of several (a sweep run as separate jobs).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to save it (default: JOB_ID-report.html here, or report.html for several jobs).",
)
@server_options
@run_command
def report(
    job_id: str | None, jobs: tuple[str, ...], out: Path | None, url: str | None, api_key: str | None, as_json: bool
) -> None:
    """Save the HTML report of a completed job (JOB_ID or --job), or of several (--job A --job B ...): figures and
    tables of the metrics; several jobs make one page, combining the cells whose prompts agree."""
    ids = [*([job_id] if job_id else []), *jobs]
    if not ids:
        raise InvalidInputError("name a job: moralscope report JOB_ID, or --job A --job B ...", field="job")
    default = Path(f"{ids[0]}-report.html") if len(ids) == 1 else Path("report.html")
    with _client(url, api_key) as client:
        path = client.report(ids, out or default)
    print_json({"path": str(path)}) if as_json else click.echo(str(path))
