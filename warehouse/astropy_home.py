"""astropy's configuration and cache folders, when the home folder cannot hold them.

astropy looks for them under the home folder when it is first used, and raises PermissionError
(a traceback from any command that reads FITS or builds an astropy table) when it cannot look
there: ``HOME`` of another user (``sudo -u``, a container's), a home that is not searchable, or
one it cannot write without either folder made already. :func:`ensure` then points astropy at a
private folder under the system's temporary folder (``ASTROPY_CONFIG_DIR`` and
``ASTROPY_CACHE_DIR``, which astropy honours when they name existing folders); otherwise it
changes nothing, and a user's own settings of those variables always stand.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["ensure"]

_VARS = {"config": "ASTROPY_CONFIG_DIR", "cache": "ASTROPY_CACHE_DIR"}


def ensure() -> None:
    if all(os.environ.get(var) for var in _VARS.values()) or _home_usable():
        return
    base = Path(tempfile.gettempdir()) / f"gwh-astropy-{os.getuid()}"
    try:
        base.mkdir(mode=0o700, exist_ok=True)
        if base.is_symlink() or base.stat().st_uid != os.getuid():  # someone else's: not ours
            base = Path(tempfile.mkdtemp(prefix="gwh-astropy-"))
        for kind, var in _VARS.items():
            folder = base / kind
            folder.mkdir(mode=0o700, exist_ok=True)
            os.environ.setdefault(var, str(folder))
    except OSError:  # no temporary folder either: astropy will say what it cannot do
        return


def _home_usable() -> bool:
    """astropy can look under the home folder: each place it checks can be examined, and
    the folders it would make exist already or can be made."""
    try:
        home = Path.home()
        places = [home / ".astropy" / kind for kind in _VARS] + [home / f".{k}" for k in _VARS]
        found = [p.is_dir() for p in places]  # PermissionError: a home it cannot search
    except (OSError, RuntimeError):
        return False
    return any(found) or os.access(home, os.W_OK | os.X_OK)
