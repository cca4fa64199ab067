"""The architecture rules of STYLE.md and issue 10, checked by walking the imports with ``ast``.

Nothing is imported or run: every check reads the source text, so a rule that breaks names the
file and line instead of failing at import time.

Rules:
- ``warehouse`` never imports ``loaders`` or ``cli`` (not at module level, not in a function, not
  under TYPE_CHECKING, not by ``import_module("loaders...")`` or ``resources.files("loaders")``);
- ``loaders`` uses only public ``warehouse`` names (no ``_private`` name defined in warehouse) and
  no SQL against the ``gwh_*`` bookkeeping tables;
- no import cycles among module-level imports;
- a source module under ``loaders/`` never imports another source;
- no module over 500 lines;
- no project import inside a function, except the short allow-list below (each with its reason);
- ``cli.py`` is thin: one ``except WarehouseError``, no command body over 15 lines;
- every ``-- contract:`` header in ``sql/`` has its assertion test in ``sql/tests/``.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PACKAGES = ("warehouse", "loaders")


def pending(step: str):
    """A rule issue 10 is still bringing into force: strict, so the step that fixes it must
    remove the marker (an unexpected pass fails the run)."""
    return pytest.mark.xfail(strict=True, reason=f"issue 10: {step}")


MAX_LINES = 500
MAX_COMMAND_BODY = 15

# Shared infrastructure in loaders/ (not a "source"): the first name after ``loaders.``.
LOADER_INFRA = {"__init__", "registry", "base", "checks", "readers", "http", "images"}

# (importing module, imported module) -> why an import inside a function is right there.
# Keep this short; an entry without a reason that still holds is a cycle being dodged.
IN_FUNCTION_ALLOWED: dict[tuple[str, str], str] = {
    # `gwh --help`, completion and `gwh --version` must not pay for duckdb/pyarrow/astropy:
    # the CLI imports a command's library module when the command runs.
    ("cli", "*"): "startup time of `gwh --help` (measured with python -X importtime)",
}


@dataclass
class Module:
    name: str
    path: Path
    tree: ast.Module
    lines: int
    # (target module, line, in_function, type_checking, imported names)
    imports: list[tuple[str, int, bool, bool, tuple[str, ...]]] = field(default_factory=list)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


@cache
def _paths() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for p in sorted((ROOT / pkg).rglob("*.py")):
            if "data" in p.relative_to(ROOT / pkg).parts:
                continue
            out[_module_name(p)] = p
    out["cli"] = ROOT / "cli.py"
    return out


@cache
def _lazy_names() -> dict[str, str]:
    """``warehouse.__init__``'s PEP 562 map: ``from warehouse import Warehouse`` imports core."""
    tree = ast.parse((ROOT / "warehouse" / "__init__.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            target = node.targets[0] if isinstance(node, ast.Assign) else node.target
            if isinstance(target, ast.Name) and target.id == "_LAZY":
                return ast.literal_eval(node.value)
    return {}


def _resolve(name: str) -> str | None:
    mods = _paths()
    while name:
        if name in mods:
            return name
        name = name.rpartition(".")[0]
    return None


class _Imports(ast.NodeVisitor):
    def __init__(self, module: Module) -> None:
        self.m = module
        self.is_pkg = module.path.name == "__init__.py"
        self.depth = 0
        self.tc = 0

    def _add(self, target: str | None, node: ast.AST, names: tuple[str, ...]) -> None:
        if target and target != self.m.name:
            self.m.imports.append((target, node.lineno, self.depth > 0, self.tc > 0, names))

    def visit_FunctionDef(self, node: ast.AST) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef
    visit_Lambda = visit_FunctionDef

    def visit_If(self, node: ast.If) -> None:
        t = node.test
        if (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
            isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING"
        ):
            self.tc += 1
            for n in node.body:
                self.visit(n)
            self.tc -= 1
            for n in node.orelse:
                self.visit(n)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for a in node.names:
            self._add(_resolve(a.name), node, (a.name,))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:
            pkg = self.m.name if self.is_pkg else self.m.name.rpartition(".")[0]
            for _ in range(node.level - 1):
                pkg = pkg.rpartition(".")[0]
            base = f"{pkg}.{base}" if base else pkg
        for a in node.names:
            full = f"{base}.{a.name}"
            if full in _paths():
                target = full
            elif base == "warehouse" and a.name in _lazy_names():
                target = _lazy_names()[a.name]  # PEP 562: the name's module is what runs
            else:
                target = _resolve(base)
            self._add(target, node, (a.name,))

    def visit_Call(self, node: ast.Call) -> None:
        # import_module("x.y") / resources.files("x") with a literal: an import all the same
        f = node.func
        fname = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
        if (
            fname in ("import_module", "files")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            self._add(_resolve(node.args[0].value), node, (fname,))
        self.generic_visit(node)


@cache
def modules() -> dict[str, Module]:
    out = {}
    for name, path in _paths().items():
        text = path.read_text(encoding="utf-8")
        m = Module(name, path, ast.parse(text), len(text.splitlines()))
        _Imports(m).visit(m.tree)
        out[name] = m
    return out


def _rel(m: Module) -> str:
    return m.path.relative_to(ROOT).as_posix()


def _package(name: str) -> str:
    return name.split(".")[0]


def _strings(tree: ast.AST):
    """(line, text) of every string literal, f-strings by their literal parts."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.lineno, node.value
        elif isinstance(node, ast.JoinedStr):
            text = "".join(
                v.value
                for v in node.values
                if isinstance(v, ast.Constant) and isinstance(v.value, str)
            )
            yield node.lineno, text


# ---------------------------------------------------------------------------------- the rules


def test_warehouse_never_imports_loaders_or_cli() -> None:
    bad = [
        f"{_rel(m)}:{line} imports {target}"
        + (" (in a function)" if in_fn else "")
        + (" (TYPE_CHECKING)" if tc else "")
        for m in modules().values()
        if _package(m.name) == "warehouse"
        for target, line, in_fn, tc, _names in m.imports
        if _package(target) in ("loaders", "cli")
    ]
    # registries naming a loaders module in a string ("loaders.x" in a tuple) count as well
    bad += [
        f"{_rel(m)}:{line} names {text!r}"
        for m in modules().values()
        if _package(m.name) == "warehouse"
        for line, text in _strings(m.tree)
        if re.fullmatch(r"(loaders|cli)(\.\w+)*", text) and _resolve(text)
    ]
    assert not bad, "warehouse/ must not depend on loaders/ or cli:\n" + "\n".join(sorted(bad))


@cache
def _warehouse_private_names() -> set[str]:
    names = set()
    for m in modules().values():
        if _package(m.name) != "warehouse":
            continue
        for node in ast.walk(m.tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                if node.value.id == "self":
                    names.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def test_loaders_use_only_public_warehouse_names() -> None:
    private = _warehouse_private_names()
    bad = []
    for m in modules().values():
        if _package(m.name) != "loaders":
            continue
        for target, line, _fn, _tc, names in m.imports:
            if _package(target) != "warehouse":
                continue
            hidden = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if any(p.startswith("_") for p in target.split(".")[1:]):
                hidden.append(target)
            if hidden:
                bad.append(f"{_rel(m)}:{line} imports {', '.join(hidden)} from {target}")
        for node in ast.walk(m.tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in private
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
            ):
                bad.append(f"{_rel(m)}:{node.lineno} uses warehouse's private .{node.attr}")
    assert not bad, "loaders/ may use only public warehouse names:\n" + "\n".join(sorted(bad))


@cache
def _bookkeeping_tables() -> set[str]:
    """The gwh_* tables warehouse creates (CREATE TABLE ...), wherever that code now lives."""
    names = set()
    pattern = re.compile(r"CREATE\s+(?:OR\s+REPLACE\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(gwh_\w+)")
    for m in modules().values():
        if _package(m.name) == "warehouse":
            for _line, text in _strings(m.tree):
                names |= set(pattern.findall(text))
    assert names, "found no CREATE TABLE gwh_* in warehouse/: update this test"
    return names


def test_loaders_send_no_sql_to_bookkeeping_tables() -> None:
    tables = _bookkeeping_tables()
    word = re.compile(r"\b(" + "|".join(sorted(tables)) + r")\b")
    bad = [
        f"{_rel(m)}:{line} {', '.join(sorted(set(word.findall(text))))}"
        for m in modules().values()
        if _package(m.name) == "loaders"
        for line, text in _strings(m.tree)
        if word.search(text)
    ]
    assert not bad, (
        "loaders/ must not query warehouse bookkeeping (use Warehouse.loaded_at / load):\n"
        + "\n".join(sorted(bad))
    )


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), plus self-loops."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles_at_module_level() -> None:
    edges: dict[str, set[str]] = {}
    for m in modules().values():
        for target, _line, in_fn, tc, _names in m.imports:
            if not in_fn and not tc:
                edges.setdefault(m.name, set()).add(target)
    found = _cycles(edges)
    assert not found, "import cycles (module level):\n" + "\n".join(" <-> ".join(c) for c in found)


def test_no_import_cycles_even_through_function_imports() -> None:
    """An import moved into a function does not remove a cycle, it hides it."""
    edges: dict[str, set[str]] = {}
    for m in modules().values():
        for target, _line, in_fn, tc, _names in m.imports:
            if not tc and not (in_fn and _allowed(m.name, target)):
                edges.setdefault(m.name, set()).add(target)
    found = _cycles(edges)
    assert not found, "import cycles (with in-function imports):\n" + "\n".join(
        " <-> ".join(c) for c in found
    )


def _source(name: str) -> str | None:
    """The loaders source a module belongs to (``loaders.hsc_ssp.das`` -> ``hsc_ssp``)."""
    parts = name.split(".")
    if parts[0] != "loaders":
        return None
    unit = parts[1] if len(parts) > 1 else "__init__"
    return None if unit in LOADER_INFRA else unit


# Modules that compose sources the way cli.py composes commands (not sources themselves),
# each with its reason.
COMPOSITIONS: dict[str, str] = {
    "loaders.simulated.demo": "`gwh demo` walks through the commands a user runs, in order: "
    "load, cutouts request/ingest (the HSC-SSP path, answered by a simulated service), measure, "
    "export",
}


def test_no_loader_source_imports_another_source() -> None:
    bad = sorted(
        {
            f"{_rel(m)}:{line} ({_source(m.name)}) imports {target} ({_source(target)})"
            for m in modules().values()
            if _source(m.name) and m.name not in COMPOSITIONS
            for target, line, _fn, _tc, _names in m.imports
            if _source(target) and _source(target) != _source(m.name)
        }
    )
    assert not bad, (
        "a source in loaders/ imports another (share through loaders.base/readers/checks/http/"
        "images or warehouse):\n" + "\n".join(bad)
    )


def test_no_module_over_500_lines() -> None:
    big = sorted(
        (f"{_rel(m)}: {m.lines} lines" for m in modules().values() if m.lines > MAX_LINES),
    )
    assert not big, f"modules over {MAX_LINES} lines (split by concept):\n" + "\n".join(big)


def _allowed(importer: str, target: str) -> bool:
    return (importer, target) in IN_FUNCTION_ALLOWED or (importer, "*") in IN_FUNCTION_ALLOWED


def test_no_project_import_inside_a_function() -> None:
    bad = sorted(
        {
            f"{_rel(m)}:{line} imports {target}"
            for m in modules().values()
            for target, line, in_fn, _tc, _names in m.imports
            if in_fn and not _allowed(m.name, target)
        }
    )
    assert not bad, (
        f"{len(bad)} project import(s) inside functions (a smell; move to module level once "
        "the cycle is gone, or add to IN_FUNCTION_ALLOWED with a reason):\n" + "\n".join(bad)
    )


def test_allow_list_is_not_stale() -> None:
    used = {(m.name, t) for m in modules().values() for t, _l, in_fn, _tc, _n in m.imports if in_fn}
    stale = [
        k
        for k in IN_FUNCTION_ALLOWED
        if k[1] != "*" and k not in used or k[1] == "*" and not any(u[0] == k[0] for u in used)
    ]
    assert not stale, f"IN_FUNCTION_ALLOWED entries no longer needed: {stale}"


# ------------------------------------------------------------------------------------ cli.py


def _commands() -> list[ast.FunctionDef]:
    tree = modules()["cli"].tree
    return [
        n
        for n in tree.body
        if isinstance(n, ast.FunctionDef)
        and any(
            isinstance(d, ast.Call)
            and isinstance(d.func, ast.Attribute)
            and d.func.attr in ("command", "callback")
            for d in n.decorator_list
        )
    ]


def test_cli_has_one_warehouse_error_wrapper() -> None:
    tree = modules()["cli"].tree
    handlers = [
        n.lineno
        for n in ast.walk(tree)
        if isinstance(n, ast.ExceptHandler)
        and n.type is not None
        and "WarehouseError" in ast.unparse(n.type)
    ]
    assert len(handlers) <= 1, (
        f"cli.py catches WarehouseError in {len(handlers)} places (lines {handlers}); "
        "one wrapper should turn it into a message and an exit code"
    )


def test_cli_command_bodies_are_short() -> None:
    long = []
    for fn in _commands():
        body = fn.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            body = body[1:]  # the docstring is the help text
        if body:
            n = body[-1].end_lineno - body[0].lineno + 1
            if n > MAX_COMMAND_BODY:
                long.append(f"cli.py:{fn.lineno} {fn.name}: {n} lines")
    assert not long, (
        f"command bodies over {MAX_COMMAND_BODY} lines (move logic into the library):\n"
        + "\n".join(long)
    )


def test_load_verbs_are_generated_from_the_registry() -> None:
    """No hand-written ``@load_app.command("x")``: ``gwh load <name>`` comes from the registry."""
    written = [
        f"cli.py:{fn.lineno} {fn.name}"
        for fn in _commands()
        for d in fn.decorator_list
        if isinstance(d, ast.Call)
        and isinstance(d.func, ast.Attribute)
        and isinstance(d.func.value, ast.Name)
        and d.func.value.id == "load_app"
    ]
    assert not written, "gwh load verbs written by hand:\n" + "\n".join(written)


# ---------------------------------------------------------------------------------------- sql/


def _contracts() -> list[tuple[str, str]]:
    out = []
    for path in sorted((ROOT / "sql").rglob("*.sql")):
        if "tests" in path.relative_to(ROOT / "sql").parts:
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("-- contract:"):
                out.append((path.relative_to(ROOT).as_posix(), path.stem))
                break
    return out


@pytest.mark.parametrize("path, view", _contracts(), ids=[v for _p, v in _contracts()])
def test_every_contract_has_its_test(path: str, view: str) -> None:
    tests = sorted((ROOT / "sql" / "tests").glob(f"{view}__*.sql"))
    assert tests, f"{path} declares a contract but sql/tests/ has no {view}__*.sql assertion"
