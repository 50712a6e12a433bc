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

# command name → "module:attribute"; modules are imported lazily.
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
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        command = getattr(importlib.import_module(module_name), attribute)
        assert isinstance(command, click.Command), target
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="moralscope")
def cli() -> None:
    """moralscope: measure whether language models morally self-correct (BBQ, Winogender, law school)."""


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
