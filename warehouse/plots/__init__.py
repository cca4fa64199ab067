"""PNG plots for a person: a density-coloured colour-magnitude diagram and a HEALPix sky map.

Both read the warehouse with SQL (``x``/``y`` are SQL expressions over the table's columns, as in
``gwh sql``), label their axes with units (from the columns' metadata or the archive schema),
put the counts in the title, and write the PNG atomically at a fixed size (``width`` x
``height`` inches at ``dpi``).

Examples
--------
>>> plot_cmd(wh, "hubble_source_catalog", "A_F555W - A_F814W", "A_F555W",
...          "cmd.png")  # doctest: +SKIP
>>> plot_sky(wh, "hsc_forced", "sky.png")  # doctest: +SKIP
"""

from warehouse.lineage import column_units
from warehouse.plots.catalog import choose_order, pixel_size_deg, plot_cmd, plot_sky
from warehouse.plots.common import DPI, SIZE_INCHES, PlotError, PlotResult
from warehouse.plots.cutout import plot_cutout, show_cutout

__all__ = [
    "DPI",
    "SIZE_INCHES",
    "PlotError",
    "PlotResult",
    "choose_order",
    "column_units",
    "pixel_size_deg",
    "plot_cmd",
    "plot_cutout",
    "plot_sky",
    "show_cutout",
]
