"""What every CLI command shares: the one error wrapper (exit codes) and small output helpers.

:func:`run_command` (a decorator) and :func:`handle_errors` (the same as a context manager) turn the
exceptions of :mod:`schemas.errors` and pydantic ``ValidationError`` into a readable message on
stderr and the exception tree's exit code: 1 for a failure the user can fix, 3 for
:class:`~schemas.errors.UnavailableError`. Usage errors stay click's (exit 2); anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
import math
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import click
from pydantic import BaseModel, ValidationError

from schemas.errors import MoralscopeError, field_path

P = ParamSpec("P")
R = TypeVar("R")


def format_validation_error(exc: ValidationError) -> str:
    """One line per problem, ``field.path: message``, as users read them."""
    lines = []
    for error in exc.errors():
        location = field_path(error.get("loc", ()))
        message = error.get("msg", "invalid value")
        lines.append(f"{location}: {message}" if location else message)
    title = exc.title or "input"
    return f"invalid {title}:\n" + "\n".join(f"  {line}" for line in lines)


def error_message(exc: BaseException) -> str:
    """The text shown for an error (the field is named when the message does not already)."""
    if isinstance(exc, ValidationError):
        return format_validation_error(exc)
    if isinstance(exc, MoralscopeError):
        if exc.field and exc.field not in exc.message:
            return f"{exc.field}: {exc.message}"
        return exc.message
    return str(exc)


def exit_code_for(exc: BaseException) -> int:
    """The exit code of an error of the exception tree (1 for validation errors)."""
    if isinstance(exc, MoralscopeError):
        return int(exc.exit_code)
    return 1


@contextmanager
def handle_errors() -> Iterator[None]:
    """Map moralscope and validation errors to ``error: …`` on stderr and the tree's exit code."""
    try:
        yield
    except (MoralscopeError, ValidationError) as exc:
        click.echo(f"error: {error_message(exc)}", err=True)
        raise SystemExit(exit_code_for(exc)) from None


def run_command(function: Callable[P, R]) -> Callable[P, R]:
    """Decorate a click command callback so that its errors exit as :func:`handle_errors` says."""

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with handle_errors():
            return function(*args, **kwargs)

    return wrapper


# -- output ------------------------------------------------------------------------------------------


def to_jsonable(value: Any) -> Any:
    """Plain JSON data from pydantic models, dataclasses, paths, dates, enums, tuples and sets.

    NaN and infinities become null, so the output is strict JSON (jq, browsers) rather than Python's.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        to_dict = getattr(value, "to_dict", None)
        return to_jsonable(to_dict() if callable(to_dict) else dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def print_json(value: Any) -> None:
    """Pretty JSON on stdout (non-ASCII kept as is)."""
    click.echo(json.dumps(to_jsonable(value), indent=2, ensure_ascii=False))


def print_table(
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    title: str | None = None,
    styles: Mapping[str, str] | None = None,
) -> None:
    """A rich table on stdout; ``styles`` maps a cell's text to a rich style (e.g. ``{"corrupt": "red"}``)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        cells = ["" if cell is None else str(cell) for cell in row]
        table.add_row(*(f"[{styles[c]}]{escape(c)}[/]" if styles and c in styles else escape(c) for c in cells))
    # a pipe gets wide lines rather than folded file names (rich assumes 80 columns without a terminal)
    width = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 200
    Console(file=sys.stdout, width=width).print(table)
