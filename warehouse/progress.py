"""Progress on the terminal for long steps (loads, cutout ingests, archive jobs, measurements).

Bars go to stderr, so piped output stays clean, and only when stderr is a terminal (where they
are erased when done). ``GWH_PROGRESS=1`` forces them on (e.g. in a CI log, where each bar's
final state stays), ``GWH_PROGRESS=0`` off; a function's own ``progress`` argument, when given,
wins over both.

Examples
--------
>>> with bar(total=3, desc="files", unit="file") as b:  # doctest: +SKIP
...     for _ in range(3):
...         b.update(1)
>>> with status("HSC-SSP job 42") as s:  # doctest: +SKIP
...     s.set("queued")
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from tqdm import tqdm

__all__ = ["ENV", "bar", "enabled", "iterate", "status"]

ENV = "GWH_PROGRESS"
_ON = {"1", "true", "yes", "on", "always"}
_OFF = {"0", "false", "no", "off", "never"}
T = TypeVar("T")


def enabled(given: bool | None = None) -> bool:
    """Whether to draw bars: ``given`` if not None, else ``$GWH_PROGRESS``, else whether stderr
    is a terminal."""
    if given is not None:
        return given
    value = os.environ.get(ENV, "").strip().lower()
    if value in _ON:
        return True
    if value in _OFF:
        return False
    return _terminal()


def _terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


def bar(
    total: float | None = None,
    *,
    desc: str = "",
    unit: str = "it",
    unit_scale: bool = False,
    progress: bool | None = None,
    **kwargs: Any,
) -> tqdm:
    """A tqdm bar on stderr, drawn only when :func:`enabled`; ``unit_scale`` for bytes."""
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        unit_scale=unit_scale,
        unit_divisor=1024 if unit == "B" else 1000,
        disable=not enabled(progress),
        file=sys.stderr,
        dynamic_ncols=True,
        leave=not _terminal(),  # a terminal is cleared; a log (GWH_PROGRESS=1) keeps the end
        **kwargs,
    )


def iterate(
    items: Iterable[T],
    *,
    desc: str = "",
    unit: str = "it",
    total: int | None = None,
    progress: bool | None = None,
) -> Iterator[T]:
    """``items``, counted on a bar as they are consumed."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with bar(total=total, desc=desc, unit=unit, progress=progress) as b:
        for item in items:
            yield item
            b.update(1)


class _Status:
    """A one-line status with the elapsed time: ``<what>: <state> [mm:ss]``."""

    def __init__(self, what: str, progress: bool | None) -> None:
        self.what = what
        self._bar = tqdm(
            total=None,
            desc=what,
            bar_format="{desc} [{elapsed}]",
            disable=not enabled(progress),
            file=sys.stderr,
            dynamic_ncols=True,
            leave=not _terminal(),
        )

    def set(self, state: str) -> None:
        self._bar.set_description_str(f"{self.what}: {state}", refresh=True)

    def close(self) -> None:
        self._bar.close()

    def __enter__(self) -> _Status:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def status(what: str, progress: bool | None = None) -> _Status:
    """A status line for a wait without a known end (an archive job queued or running)."""
    return _Status(what, progress)
