"""``moralscope spec``: the job spec's JSON Schema, and offline validation of spec files."""

from __future__ import annotations

import json

import click

from moralscope.cli.errors import print_json, run_command


@click.group()
def spec() -> None:
    """Job spec tools: the JSON Schema, and validating spec files offline."""


@spec.command()
def schema() -> None:
    """Print the JSON Schema of the job spec (also in schemas/jobspec.schema.json)."""
    from schemas.spec import job_spec_json_schema

    click.echo(json.dumps(job_spec_json_schema(), indent=2))


@spec.command()
def reference() -> None:
    """Print the job spec reference as Markdown (the README's "Job spec reference")."""
    from schemas.reference import job_spec_reference

    click.echo(job_spec_reference(), nl=False)


@spec.command()
@click.argument("spec_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the validated spec with defaults filled in.")
@run_command
def validate(spec_file: str, as_json: bool) -> None:
    """Validate SPEC_FILE; print what it will run (exit 1 with the offending fields if invalid).

    Plugin benchmarks are checked against the plugins installed here, and custom benchmarks' data files
    are read and checked (a server checks them again, with its own access rules, at submission).
    """
    from evals.benchmarks import job_benchmarks
    from evals.conditions import conditions_for
    from evals.custom import LOCAL_ACCESS, CustomBenchmark
    from moralscope.specfile import load_job_spec

    job = load_job_spec(spec_file)
    benchmarks = job_benchmarks(job, LOCAL_ACCESS)
    rows = {s.name: len(s.benchmark.load_items()) for s in benchmarks if isinstance(s.benchmark, CustomBenchmark)}
    if as_json:
        print_json(job)
        return
    click.echo(f"{spec_file}: valid")
    for model in job.models:
        click.echo(f"  model {model.key}: {model.name} ({model.engine}, {model.dtype}, {model.prompt_format})")
    for selected in benchmarks:
        names = ", ".join(c.name for c in conditions_for(job, selected.benchmark))
        data = f" ({rows[selected.name]} rows of {selected.spec.data})" if selected.name in rows else ""
        click.echo(f"  {selected.name}: {names}{data}")
