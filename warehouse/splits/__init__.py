"""Checks on the train / validation / test splits: :func:`check_splits` reports objects of
different splits that are sky neighbours, whose cutouts overlap, or whose pixels are identical
(``gwh splits check``; stored in every release manifest)."""

from warehouse.splits.check import LeakageReport, check_command, check_splits, parse_radius

__all__ = ["LeakageReport", "check_command", "check_splits", "parse_radius"]
