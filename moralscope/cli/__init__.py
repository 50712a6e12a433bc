"""The ``moralscope`` command line.

Each command group lives in its own module and is imported only when it runs, so that ``moralscope
--help`` and the client commands never import torch, Ray or the web server.

Exit codes (one place, :func:`moralscope.cli.errors.run_command`): 0 success, 1 a failure the
user can fix (bad spec, missing data, failed job), 2 usage errors (click), 3 the server or a
dependency could not be reached.
"""

from __future__ import annotations

import importlib

import click

# command name → "module:attribute"; modules are imported only when their command runs.
COMMANDS: dict[str, str] = {
    "data": "moralscope.cli.data:data",
    "prompts": "moralscope.cli.prompts:prompts",
    "models": "moralscope.cli.models:models",
    "score": "moralscope.cli.models:score",
    "generate": "moralscope.cli.models:generate",
    "serve": "moralscope.cli.server:serve",
    "run": "moralscope.cli.server:run",
    "spec": "moralscope.cli.spec:spec",
    "submit": "moralscope.cli.client:submit",
    "status": "moralscope.cli.client:status",
    "list": "moralscope.cli.client:list_jobs",
    "cancel": "moralscope.cli.client:cancel",
    "results": "moralscope.cli.client:results",
    "report": "moralscope.cli.client:report",
}

# one-line help per command, so that `moralscope --help` imports no command module.
COMMAND_HELP: dict[str, str] = {
    "data": "Check and download the benchmark datasets.",
    "prompts": "Print the exact rendered prompt of an item under a condition.",
    "models": "Resolve, convert and cache models.",
    "score": "Score candidate continuations of a literal prompt.",
    "generate": "Sample a continuation of a literal prompt.",
    "serve": "Serve the REST API and run submitted jobs.",
    "run": "Run a job spec in this process (no server) and print its metrics.",
    "spec": "The job spec's JSON Schema; validate spec files offline.",
    "submit": "Submit a job spec to a server (--wait to follow it).",
    "status": "Show a job's state and progress.",
    "list": "List jobs on a server.",
    "cancel": "Cancel a job.",
    "results": "Fetch a job's metrics or samples.",
    "report": "Save the HTML report of a job, or of several jobs as one.",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use (``--help`` imports none)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module_name, attribute = COMMANDS[cmd_name].split(":")
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{COMMANDS[cmd_name]} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, COMMAND_HELP[name]) for name in self.list_commands(ctx)])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="moralscope")
def cli() -> None:
    """moralscope: measure whether language models morally self-correct (BBQ, Winogender, law school)."""


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
