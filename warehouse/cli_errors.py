"""How ``gwh`` says what went wrong: one line on stderr and an exit code, never a traceback.

* :func:`handled` wraps every command: a :class:`~warehouse.errors.WarehouseError`, a write out
  of room or a file operation the system refused becomes its message and its exit code; a signal
  its one line (130, 143); a reader that stopped (``| head``) exit 0.
* :class:`OneLineUsage` is the top group: a usage error (unknown command or option, missing or
  bad value) is one line naming the help to read, exit 2.
"""

from __future__ import annotations

import contextlib
import functools
import signal
from collections.abc import Callable, Iterator
from typing import Any

import typer
from typer.core import TyperGroup

from warehouse import interrupts
from warehouse.errors import WarehouseError
from warehouse.files import out_of_room, refused_by_os

__all__ = ["OneLineUsage", "handled"]


def handled(command: Callable[..., None]) -> Callable[..., None]:
    """The one place a :class:`WarehouseError` (or a write out of room, :func:`out_of_room`, or
    a file operation the system refused, :func:`refused_by_os`) becomes its message on stderr
    and its exit code."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> None:
        try:
            command(*args, **kwargs)
        except BaseException as exc:
            signum = interrupts.terminated_by()
            if signum:  # whatever the signal became on its way up (DuckDB: "interrupted")
                typer.echo(interrupts.terminated_said(signum), err=True)
                raise SystemExit(128 + signum) from None
            if interrupts.is_interrupt(exc):  # typer would exit 130 without a word
                typer.echo(interrupts.CTRL_C_SAID, err=True)
                raise SystemExit(128 + signal.SIGINT) from None
            if isinstance(exc, BrokenPipeError):  # as gwh sql does when | head stops reading
                interrupts.reader_gone()
                raise SystemExit(0) from None
            error = (
                exc if isinstance(exc, WarehouseError) else out_of_room(exc) or refused_by_os(exc)
            )
            if error is None:
                raise
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(error.exit_code) from None

    return run


class OneLineUsage(TyperGroup):
    """``gwh``'s top group: a usage error (unknown command or option, missing or bad value) is
    one line on stderr naming the help to read, exit 2, as every other error is one line (Click
    prints the usage, a hint and a blank line around it)."""

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        with _one_line_usage():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: Any) -> Any:
        with _one_line_usage():
            return super().invoke(ctx)


_USAGE_ERROR: type[Exception] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError"
)
"""Click's UsageError, from the Click that Typer uses (typer 0.29 carries its own)."""


@contextlib.contextmanager
def _one_line_usage() -> Iterator[None]:
    try:
        yield
    except _USAGE_ERROR as caught:
        exc: Any = caught  # Click's UsageError: format_message, ctx, show
        if type(exc).__name__ == "NoArgsIsHelpError":  # `gwh` alone: the help, as it is
            raise
        said = exc.format_message().rstrip()
        said = "error: " + (said if said.endswith((".", "?")) else said + ".")
        if exc.ctx is not None:
            said += f" See {exc.ctx.command_path} --help."
        exc.show = lambda file=None: typer.echo(said, err=True)
        raise
