"""Every CLI command (and subcommand) answers --help, and `moralscope --help` imports no command module."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from moralscope.cli import COMMAND_HELP, COMMANDS, cli


def _all_command_paths() -> list[tuple[str, ...]]:
    paths: list[tuple[str, ...]] = []
    context = click.Context(cli)
    for name in COMMANDS:
        command = cli.get_command(context, name)
        assert command is not None
        paths.append((name,))
        if isinstance(command, click.Group):
            paths += [(name, sub) for sub in command.list_commands(click.Context(command))]
    return paths


def test_every_command_has_a_one_line_help() -> None:
    assert set(COMMAND_HELP) == set(COMMANDS)


@pytest.mark.parametrize("path", _all_command_paths(), ids=" ".join)
def test_help(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: " in result.output


def test_top_level_help_is_light() -> None:
    code = (
        "import sys; from moralscope.cli import main; sys.argv = ['moralscope', '--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'ray', 'fastapi', 'transformers', 'service', 'workers') if m in sys.modules]\n"
        "print('HEAVY', heavy)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "HEAVY []" in result.stdout, result.stdout + result.stderr


def test_usage_errors_exit_2() -> None:
    assert CliRunner().invoke(cli, ["submit"]).exit_code == 2
    assert CliRunner().invoke(cli, ["no-such-command"]).exit_code == 2
