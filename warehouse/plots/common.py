"""What the plots share: the PNG size, :class:`PlotResult`, :class:`PlotError`, axis labels
from units, the SIMULATED watermark and the atomic PNG write."""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from warehouse.db import quote_ident
from warehouse.errors import QueryError, WarehouseError, first_line
from warehouse.files import Layout, atomic_path, missing_parent
from warehouse.images import preview
from warehouse.lineage import simulated_sources
from warehouse.store.contracts import base_tables

DPI = 150
SIZE_INCHES = (7.0, 6.0)
IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class PlotError(WarehouseError):
    """A plot cannot be made (no rows, bad expression, unknown table)."""


@dataclass(frozen=True)
class PlotResult:
    path: Path
    points: int  # rows plotted
    dropped: int  # rows left out (NULL or non-finite values)
    pixels: tuple[int, int]  # PNG width, height
    detail: str = ""
    title: str = ""
    x_label: str = ""
    y_label: str = ""
    simulated: tuple[str, ...] = ()  # the simulated inputs behind the plot (empty: real data)
    figure: Any = field(default=None, repr=False, compare=False)  # the matplotlib Figure
    note: str = ""  # what ``gwh plot`` says of it after the size

    def summary(self) -> str:
        return f"wrote {self.path} ({self.pixels[0]}x{self.pixels[1]} px, {self.note})"


def table_spec(table: str):  # type: ignore[no-untyped-def]
    defs = base_tables()
    return defs[table].spec if table in defs else None


def mark_simulated(fig, wh, table: str, where: str | None = None) -> list[str]:  # type: ignore[no-untyped-def]
    """A SIMULATED watermark across the figure when the plotted rows come from simulated inputs.

    Rows of a table with a ``simulated`` column (image tables) say it themselves: only the rows
    the plot shows (``where``) count, so real cutouts plotted alone are not called simulated. A
    catalog's rows carry no file of origin: any simulated file loaded into it marks its plots."""
    columns = plot_query(wh, f"SELECT * FROM {quote_ident(table)} LIMIT 0").column_names
    if "simulated" in columns:
        n = (
            plot_query(
                wh,
                f"SELECT count(*) FILTER (WHERE simulated) AS n FROM {quote_ident(table)}"
                f"{where_sql(where)}",
                given=f"--where {where!r}" if where else "",
            )
            .column("n")[0]
            .as_py()
        )
        sources = [f"{table}: {n:,} simulated row(s) plotted"] if n else []
    else:
        sources = simulated_sources(wh, table)
    if sources:
        preview.watermark_simulated(fig, fontsize=64, alpha=0.18, rotation=30)
    return sources


SENTINEL_MAG = 99
"""A magnitude of this size or more (-99, 99, -999) is a catalog's "not measured"."""


def fit_title(title: str, width: int = 84) -> str:
    """``title`` wrapped to the figure's width (a long one was cut at both edges)."""
    return "\n".join(textwrap.fill(line, width) for line in title.split("\n"))


def axis_label(expr: str, units: dict[str, str], given: str | None) -> tuple[str, str]:
    """The label of an axis and the unit found for the expression ('' if none or mixed)."""
    names = {m.lower() for m in IDENT.findall(expr)}
    found = {units[n] for n in names if n in units}
    unit = found.pop() if len(found) == 1 else ""
    if given:
        return given, unit
    return (f"{expr} [{unit}]" if unit else expr), unit


def save_png(fig, out: Path, layout: Layout) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """``fig`` written to ``out`` (atomically), never into ``layout``'s own parts."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    out = Path(out)
    layout.refuse_owned(out, "--out")
    if out.suffix.lower() != ".png":
        raise PlotError(f"{out}: plots are PNG files; give a name ending in .png")
    if (missing := missing_parent(out)) is not None:
        raise PlotError(missing)
    with atomic_path(out) as tmp:
        FigureCanvasAgg(fig)
        fig.savefig(tmp, dpi=DPI, format="png")
    width, height = fig.get_size_inches()
    return int(round(width * DPI)), int(round(height * DPI))


def new_figure(size: tuple[float, float]):  # type: ignore[no-untyped-def]
    from matplotlib.figure import Figure

    return Figure(figsize=size, dpi=DPI, layout="constrained")


def plot_query(wh, sql: str, params: list | None = None, given: str = ""):  # type: ignore[no-untyped-def]
    """``wh.query``; a failure is one line naming what the user ``given`` (not our SQL)."""
    try:
        return wh.query(sql, params)
    except QueryError as exc:
        first = first_line(exc)
        raise PlotError(f"{first} (in {given})" if given else first) from None


def where_sql(where: str | None) -> str:
    return f" WHERE ({where})" if where else ""
