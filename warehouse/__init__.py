"""galaxy-warehouse: survey catalogs and cutouts into reproducible, versioned ML datasets."""

__version__ = "0.1.0"
