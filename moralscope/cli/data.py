"""``moralscope data``: check and fetch the pinned dataset files."""

from __future__ import annotations

from pathlib import Path

import click

from moralscope.cli.errors import print_json, print_table, run_command

_ONLY_HELP = "A file key (bbq/data/Age.jsonl), a dataset (bbq, winogender, lawschool) or a BBQ category (Age)."
_STATE_STYLES = {"ok": "green", "missing": "yellow", "corrupt": "bold red", "unreadable": "bold red"}


@click.group()
def data() -> None:
    """Check and fetch the dataset files (every file is pinned to an upstream commit and a sha256)."""


@data.command()
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Search this folder first (then $MORALSCOPE_DATA_DIR, then the cache).",
)
@click.option("--only", "only", metavar="NAME", help=_ONLY_HELP)
@click.option("--strict", is_flag=True, help="Also fail (exit 1) when a file is missing.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@run_command
def verify(data_dir: Path | None, only: str | None, strict: bool, as_json: bool) -> None:
    """Show every dataset file: present or missing, where, sha256 ok, rows.

    Exit status 1 when a file that is present is corrupt (wrong sha256) or unreadable: a bad copy is
    never used. A missing file is reported but is not a failure unless --strict is given, because
    missing files are downloaded on first use (or with `moralscope data pull`); the shared test data
    lacks five large BBQ files by design. Nothing is downloaded by this command.
    """
    from evals.datasets import DatasetSources

    sources = DatasetSources(data_dir, download=False)
    rows = sources.status(only)
    bad = [r for r in rows if r.state in ("corrupt", "unreadable")]
    missing = [r for r in rows if r.state == "missing"]
    failed = bool(bad) or (strict and bool(missing))
    if as_json:
        print_json({"ok": not failed, "files": [r.to_dict() for r in rows]})
    else:
        table_rows = [
            (
                r.key,
                r.state,
                r.where or "",
                r.location or "",
                {True: "ok", False: "MISMATCH", None: ""}[r.sha256_ok],
                r.rows,
            )
            for r in rows
        ]
        print_table(
            ("file", "state", "where", "path", "sha256", "rows"),
            table_rows,
            title="moralscope datasets",
            styles={**_STATE_STYLES, "MISMATCH": "bold red"},
        )
        for r in bad:
            click.echo(f"{r.key}: {r.detail}. Delete it and run `moralscope data pull --only {r.key}`.", err=True)
        if missing:
            click.echo(
                f"{len(missing)} file(s) missing; fetch them with `moralscope data pull` "
                "(or they are downloaded on first use).",
                err=True,
            )
    if failed:
        raise SystemExit(1)


@data.command()
@click.option(
    "--dest",
    type=click.Path(file_okay=False, path_type=Path),
    help="Put the files in this folder (default: the user cache, skipping files present anywhere).",
)
@click.option("--only", "only", metavar="NAME", help=_ONLY_HELP)
@click.option("--mirror", metavar="URL", help="Download {URL}/{key} instead of upstream ($MORALSCOPE_DATASET_MIRROR).")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="A folder searched first for files already present.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@run_command
def pull(dest: Path | None, only: str | None, mirror: str | None, data_dir: Path | None, as_json: bool) -> None:
    """Download the dataset files that are missing, verifying each sha256 (exit 1 if any fails)."""
    from evals.datasets import DatasetSources

    sources = DatasetSources(data_dir, mirror_url=mirror, progress=not as_json)
    results = sources.pull(only, dest, strict=False)
    failures = [r for r in results if r.action == "failed"]
    if as_json:
        print_json({"ok": not failures, "files": [r.to_dict() for r in results]})
    else:
        print_table(
            ("file", "action", "path"),
            [(r.key, r.action, r.path or "") for r in results],
            title="moralscope data pull",
            styles={"downloaded": "green", "failed": "bold red"},
        )
        for r in failures:
            click.echo(f"error: {r.error}", err=True)
    if failures:
        raise SystemExit(1)
