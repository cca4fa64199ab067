"""A folder that is read-only for real, as on a read-only disk or share."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

# runs "$@" in a mount namespace where the folder "$1" is a read-only bind mount of itself
_RO_MOUNT = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" "$1" && shift && exec "$@"'


def read_only_prefix(folder: Path) -> list[str]:
    """A command prefix under which ``folder`` is read-only for real, or skip: chmod when not
    root (root ignores modes); as root, a read-only bind mount in a mount namespace (unshare)."""
    if os.geteuid() != 0:
        for path in [folder, *folder.rglob("*")]:
            path.chmod(0o555 if path.is_dir() else 0o444)
        return []
    if shutil.which("unshare") is None:
        pytest.skip("root without unshare: no way to make a folder read-only")
    prefix = ["unshare", "-m", "sh", "-c", _RO_MOUNT, "sh", str(folder)]
    probe = subprocess.run([*prefix, "touch", str(folder / "probe")], capture_output=True)
    if probe.returncode == 0 or (folder / "probe").exists():
        (folder / "probe").unlink(missing_ok=True)
        pytest.skip("cannot mount a read-only folder here")
    return prefix
