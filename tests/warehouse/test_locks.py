"""The writer lock on a warehouse that cannot be written: one line, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.readonly_fs import read_only_prefix
from warehouse.core import Warehouse
from warehouse.errors import NotWritableError
from warehouse.locks import writer_lock

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "command",
    [["refresh"], ["release", "create", "v1"], ["load", "hsc-specz", "specz.csv"]],
)
def test_writer_on_a_read_only_warehouse_is_one_line(tmp_path, command):
    root = tmp_path / "wh"
    Warehouse.init(root)
    (tmp_path / "specz.csv").write_text("object_id,specz_name\n1,a\n")
    before = sorted(p.name for p in root.iterdir())
    prefix = read_only_prefix(root)
    run = subprocess.run(
        [*prefix, sys.executable, str(REPO / "cli.py"), *command, "--root", str(root)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), run.stderr
    assert f"{root} cannot be written" in lines[0] and "read-only" in lines[0]
    assert sorted(p.name for p in root.iterdir()) == before


def test_writer_lock_that_cannot_be_opened_is_a_warehouse_error(tmp_path):
    root = tmp_path / "wh"
    Warehouse.init(root)
    (root / ".lock").unlink()
    (root / ".lock").symlink_to(tmp_path / "gone" / "lock")  # os.open fails: no such folder
    with pytest.raises(NotWritableError, match=r"cannot be written \(No such file"):
        with writer_lock(root, "gwh refresh"):
            pass
