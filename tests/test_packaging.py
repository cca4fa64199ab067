"""The project's own files declare what a bare ``pip install -e .`` needs.

The README's first command (install without extras, then ``gwh demo``) broke once because a runtime
import arrived only with the test extras. ``.ci/run`` runs that command in a fresh venv; this test
catches the same mistake in seconds, statically: every third-party module imported by the
installed packages (outside ``try: ... except ImportError``) must belong to a distribution listed
in ``[project].dependencies``.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIRST_PARTY = {"warehouse", "loaders", "sql", "cli", "tests"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _declared() -> set[str]:
    deps = _pyproject()["project"]["dependencies"]
    return {_norm(re.split(r"[\s<>=!~;\[(]", d, maxsplit=1)[0]) for d in deps}


def _guarded_lines(tree: ast.AST) -> set[int]:
    """Lines of ``try: ... except ImportError`` bodies and ``if TYPE_CHECKING:`` blocks."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            for stmt in node.body:
                lines |= set(range(stmt.lineno, (stmt.end_lineno or stmt.lineno) + 1))
            continue
        if not isinstance(node, ast.Try):
            continue
        names = set()
        for h in node.handlers:
            types = h.type.elts if isinstance(h.type, ast.Tuple) else [h.type]
            names |= {getattr(t, "id", "") for t in types}
        if names & {"ImportError", "ModuleNotFoundError"}:
            for stmt in node.body:
                lines |= set(range(stmt.lineno, (stmt.end_lineno or stmt.lineno) + 1))
    return lines


def _runtime_imports() -> dict[str, str]:
    """Top-level module name -> first place it is imported, for the installed packages."""
    files = [ROOT / "cli.py"]
    for pkg in ("warehouse", "loaders", "sql"):
        files += sorted((ROOT / pkg).rglob("*.py"))
    found: dict[str, str] = {}
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        guarded = _guarded_lines(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                mods = [node.module]
            else:
                continue
            if node.lineno in guarded:
                continue
            for mod in mods:
                top = mod.split(".")[0]
                if top in FIRST_PARTY or top in sys.stdlib_module_names:
                    continue
                found.setdefault(top, f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_every_runtime_import_is_a_declared_dependency():
    declared = _declared()
    owners = metadata.packages_distributions()
    missing = []
    for module, where in sorted(_runtime_imports().items()):
        dists = {_norm(d) for d in owners.get(module, [module])}
        if not dists & declared:
            missing.append(f"{where} imports {module!r} (from {', '.join(sorted(dists))})")
    assert not missing, "undeclared runtime imports:\n" + "\n".join(missing)


def test_requires_python_admits_no_interpreter_without_tomllib():
    # warehouse/config.py reads warehouse.toml with tomllib, new in Python 3.11.
    spec = _pyproject()["project"]["requires-python"]
    assert re.fullmatch(r">=\s*3\.(1[1-9]|[2-9]\d)(\.\d+)?", spec.strip()), spec


def test_ci_runs_the_readme_commands_verbatim_and_in_order():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = re.findall(r"^    (python3 -m venv .*)$", readme, re.M)[:2]
    assert len(commands) == 2 and "gwh demo" in commands[0] and "pytest" in commands[1]
    assert "[test]" not in commands[0]  # the demo runs on a bare install
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    positions = [ci.find(c) for c in commands]
    assert all(p >= 0 for p in positions), "a README command is not in .ci/run verbatim"
    assert positions[0] < positions[1]


def test_the_ml_extra_brings_what_the_readme_ml_section_imports():
    # README "From a release to a training loop": torch for GalaxyDataset and datasets for
    # `datasets.load_dataset('galaxies/')`; pip install -e '.[ml]' must bring both.
    extra = _pyproject()["project"]["optional-dependencies"]["ml"]
    names = {_norm(re.split(r"[\s<>=!~;\[(]", d, maxsplit=1)[0]) for d in extra}
    assert {"torch", "datasets"} <= names
