"""The command surface as data (warehouse.commands): every declared command reaches a real
function that takes its options, and ``run`` turns results into output and exit codes."""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass

import pytest

from loaders import registry
from warehouse import commands
from warehouse.commands import REQUIRED, Command, Option

ALL = commands.COMMANDS + registry.COMMANDS


def _function(command: Command):  # type: ignore[no-untyped-def]
    module, _, name = command.target.partition(":")
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("command", ALL, ids=lambda c: c.name)
def test_every_command_reaches_a_function_that_takes_its_options(command: Command) -> None:
    params = inspect.signature(_function(command)).parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    for option in command.options:
        assert takes_any or option.name in params, f"{command.name}: {option.name}"
    given = {o.name for o in command.options} | {"echo", "warn"}
    first = next(iter(params))  # the warehouse, release or root the command opens
    for name, p in list(params.items())[1:]:
        if p.default is p.empty and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            assert name in given, f"{command.name}: {first}, then {name} is required but no option"


def test_names_are_unique_and_every_command_has_help() -> None:
    names = [c.name for c in ALL]
    assert len(names) == len(set(names))
    assert all(c.help.strip() and all(o.help for o in c.options) for c in ALL)


def test_required_options_come_before_optional_arguments() -> None:
    for c in ALL:
        positional = [o for o in c.options if not o.flag]
        defaults = [o.default is REQUIRED for o in positional]
        assert defaults == sorted(defaults, reverse=True), c.name


def test_an_unknown_opening_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="opens='files'"):
        Command("x", "m:f", "help", opens="files")


@dataclass
class _Result:
    n: int

    def summary(self) -> str:
        return f"{self.n} done"


def returns_a_result(wh: object, *, n: int) -> _Result:
    return _Result(n)


def returns_a_code(wh: object, *, code: int, echo, warn) -> int:  # type: ignore[no-untyped-def]
    echo("message")
    warn("problem")
    return code


def test_run_prints_a_summary_and_passes_exit_codes() -> None:
    out: list[str] = []
    err: list[str] = []
    opt = Option("n", int, REQUIRED, "--n", "how many")
    summary = Command("s", f"{__name__}:returns_a_result", "help", (opt,))
    assert commands.run(summary, None, out.append, err.append, n=3) == 0
    assert out == ["3 done"] and err == []
    code = Command("c", f"{__name__}:returns_a_code", "help")
    assert commands.run(code, None, out.append, err.append, code=4) == 4
    assert out[-1] == "message" and err == ["problem"]
