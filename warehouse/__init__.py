"""galaxy-warehouse: survey catalogs and cutouts into reproducible, versioned ML datasets.

The front door of the library is :class:`Warehouse`:

>>> from warehouse import Warehouse
>>> wh = Warehouse.open("gwh-demo/warehouse")  # doctest: +SKIP
>>> wh.query("select split, count(*) as n from ml_objects group by 1")  # pyarrow.Table
... # doctest: +SKIP
>>> wh.query_df("select * from ml_objects where split = ?", ["test"])  # pandas
... # doctest: +SKIP
>>> wh.query_table("select object_id, i_cmodel_mag from ml_objects")  # astropy, with units
... # doctest: +SKIP

Names are imported when first used (PEP 562), so ``import warehouse`` (and ``gwh --help``)
stays fast and loading a submodule never needs the whole library.
"""

from __future__ import annotations

from importlib import import_module, metadata
from typing import TYPE_CHECKING, Any

from warehouse import astropy_home
from warehouse.errors import (
    ArchiveError,
    AuthenticationError,
    ConfigError,
    CutoutError,
    ExportError,
    LoadError,
    MorphologyError,
    NotAWarehouseError,
    QueryError,
    ReadOnlyError,
    ReleaseError,
    UnavailableViewError,
    WarehouseBusyError,
    WarehouseError,
)

astropy_home.ensure()  # before anything imports astropy

try:  # pyproject.toml is the one place the version is written
    __version__ = metadata.version("galaxy-warehouse")
except metadata.PackageNotFoundError:  # a source tree that was never pip-installed
    __version__ = "0+unknown"

# public name -> module that defines it
_LAZY = {
    "Warehouse": "warehouse.core",
    "LoadResult": "warehouse.loading",
    "ViewInfo": "warehouse.core",
    "Config": "warehouse.config",
    "ExportOptions": "warehouse.export",
    "ExportResult": "warehouse.export",
    "export_hdf5": "warehouse.export",
    "export_all_splits": "warehouse.export",
    "to_astropy": "warehouse.api",
    "open_release": "warehouse.release",
    "plot_cmd": "warehouse.plots",
    "plot_sky": "warehouse.plots",
    "plot_cutout": "warehouse.plots",
    "read_cutout": "warehouse.cutouts",
    "PlotError": "warehouse.plots",
}

__all__ = [
    "ArchiveError",
    "AuthenticationError",
    "Config",
    "ConfigError",
    "CutoutError",
    "ExportError",
    "ExportOptions",
    "ExportResult",
    "LoadError",
    "LoadResult",
    "MorphologyError",
    "NotAWarehouseError",
    "PlotError",
    "QueryError",
    "ReadOnlyError",
    "ReleaseError",
    "UnavailableViewError",
    "ViewInfo",
    "Warehouse",
    "WarehouseBusyError",
    "WarehouseError",
    "__version__",
    "export_all_splits",
    "export_hdf5",
    "open_release",
    "plot_cmd",
    "plot_cutout",
    "plot_sky",
    "read_cutout",
    "to_astropy",
]

if TYPE_CHECKING:  # for type checkers and IDEs; at run time these load on first use
    from warehouse.api import to_astropy
    from warehouse.config import Config
    from warehouse.core import ViewInfo, Warehouse
    from warehouse.cutouts import read_cutout
    from warehouse.export import ExportOptions, ExportResult, export_all_splits, export_hdf5
    from warehouse.loading import LoadResult
    from warehouse.plots import PlotError, plot_cmd, plot_cutout, plot_sky
    from warehouse.release import open_release


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'warehouse' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
