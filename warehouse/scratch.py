"""Scratch folders that name their owner, so that the next run removes those a killed run left.

A scratch folder is ``<prefix><host>-<pid>-<random>`` in a given parent: ``host`` is a short hash
of this machine's name (a PID says nothing about another machine's processes, e.g. on a shared
file system) and ``pid`` the process that made it. A folder whose process is gone is stale; a
live process's folder, another machine's and anything not named so are never touched.

Examples
--------
>>> with scratch_dir(Path("out"), ".train.h5.gwh-tmp-") as tmp:  # doctest: +SKIP
...     build(tmp / "train.h5")
>>> remove_stale(Path("out"), ".gwh-tmp-")  # doctest: +SKIP
[PosixPath('out/.train.h5.gwh-tmp-1a2b3c4d-4242-x8k2')]
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from warehouse.files import host_tag, pid_alive

__all__ = ["remove_stale", "scratch_dir"]


def remove_stale(parent: Path, marker: str) -> list[Path]:
    """Remove the entries of ``parent`` named ``...<marker><host>-<pid>-...`` whose process
    ``pid`` on this ``host`` no longer runs; return them."""
    removed: list[Path] = []
    if not Path(parent).is_dir():
        return removed
    pattern = re.compile(re.escape(marker) + r"(?P<host>[0-9a-f]{8})-(?P<pid>\d+)-")
    host = host_tag()
    for entry in sorted(Path(parent).iterdir()):
        m = pattern.search(entry.name)
        if m is None or m["host"] != host or pid_alive(int(m["pid"])):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


@contextlib.contextmanager
def scratch_dir(parent: Path, prefix: str) -> Iterator[Path]:
    """A new folder ``<prefix><host>-<pid>-<random>`` in ``parent``, removed on any exit
    (exception, Ctrl-C); after a kill it stays until :func:`remove_stale` finds it."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=f"{prefix}{host_tag()}-{os.getpid()}-", dir=parent))
    try:
        yield path
    finally:
        _remove(path)


def _remove(path: Path) -> None:
    """Remove the folder ``path``, retrying while a worker thread may still write into it as
    the run unwinds. A signal landing meanwhile (SIGTERM, Ctrl-C: the run was ending anyway)
    does not stop the removal: its exception is raised once the folder is gone (CI saw a
    SIGTERM that came as a cutout ingest finished leave its folder behind)."""
    signalled: BaseException | None = None
    for _ in range(40):
        try:
            shutil.rmtree(path, ignore_errors=True)
            if not path.exists():
                break
            time.sleep(0.05)
        except (KeyboardInterrupt, SystemExit) as exc:
            signalled = signalled or exc
    if signalled is not None:
        raise signalled
