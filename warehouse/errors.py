"""Typed exceptions. Every message says what went wrong and what to do about it.

The CLI turns any :class:`WarehouseError` into its message and a non-zero exit;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import re


class WarehouseError(Exception):
    """Base class of every error a user can act on."""

    exit_code = 1


class UsageError(WarehouseError):
    """Options that cannot go together, or a missing one (exit code 2, as for a usage error)."""

    exit_code = 2


class WarehouseBusyError(WarehouseError):
    """Another process holds the warehouse's writer lock (its command and PID are named)."""


class NotWritableError(WarehouseError):
    """A command that changes the warehouse cannot write its folder (read-only, no permission)."""


class ConfigError(WarehouseError):
    """warehouse.toml is missing, malformed or has an invalid value."""


class NotAWarehouseError(WarehouseError):
    """The root does not hold a warehouse (no ``gwh init`` yet)."""


class LoadError(WarehouseError):
    """An input file cannot be loaded: unreadable, truncated, wrong columns or values."""


class QueryError(WarehouseError):
    """A SQL statement failed: unknown table, syntax, or a view that cannot be built."""


class ReadOnlyError(QueryError):
    """A read path was given SQL that writes, attaches, installs, changes settings or is not one
    statement."""


class UnavailableViewError(QueryError):
    """A view needs columns or tables that were never loaded."""


class DamagedFileError(QueryError):
    """A file of the warehouse was truncated, changed or deleted outside gwh."""


class CutoutError(WarehouseError):
    """A cutout file cannot be ingested or a cutout is missing."""


class CutoutsLeftOutError(CutoutError):
    """Some cutout files were not ingested (each named with its reason); the others were."""


class ExportError(WarehouseError):
    """An export cannot be written."""


class DatasetError(WarehouseError):
    """An export cannot be read for training (warehouse.ml), or PyTorch is not installed."""


class ReleaseError(WarehouseError):
    """A release cannot be created, found or verified."""


class ArchiveError(WarehouseError):
    """A remote archive answered with an error or could not be reached."""


class AuthenticationError(ArchiveError):
    """The archive refused the credentials."""


class MorphologyError(WarehouseError):
    """Morphology cannot be measured (no cutouts, unknown band, a worker died)."""


class QueryTimeoutError(QueryError):
    """A read query ran longer than its time limit and was cancelled."""


class ServeError(WarehouseError):
    """``gwh serve`` cannot start (port taken, bad address) or a page was asked for something
    that does not exist (an unknown object, view or release)."""


class BadRequestError(WarehouseError):
    """A page or endpoint of ``gwh serve`` was given a malformed parameter (not a whole number,
    out of range, an unknown stretch or column to order by): HTTP 400, not 404."""


class ComputeError(WarehouseError):
    """A Dask cluster cannot be used: distributed missing, a bad address, no scheduler there, or
    a computation that would not be exact per partition."""


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message (its class name when it has none: ``str(exc)`` of
    ``KeyError()`` is empty, where ``splitlines()[0]`` raised an IndexError)."""
    text = str(exc).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__


def one_line(exc: BaseException) -> str:
    """``exc``'s message in one line: its first, and the query line DuckDB's excerpt points at
    (its ``LINE n:`` with a caret below)."""
    text = str(exc).strip()
    first = first_line(exc)
    line = re.search(r"^LINE (\d+):", text, re.M)
    return first + (f" (at line {line.group(1)} of the query)" if line else "")
