"""Immutable, verifiable releases: what a paper cites, rebuildable byte for byte years later.

A release is a folder ``ROOT/releases/<name>/`` holding one human-readable ``manifest.json``. The
manifest names the table versions it froze (``catalogs/<table>/v<NNNNNN>``, which the warehouse
never removes while a release holds them), the SHA-256 of every one of their files, the SQL of
every view and macro, the configuration, the input files, row counts per view and split, and the
citations of the sources used. Table versions are immutable and shared between releases and the
live warehouse (partitions a load did not touch are hard links), so a second release costs its
manifest plus whatever changed.

Querying a release builds its views in memory from the frozen SQL over the frozen files, so
``gwh sql --release v1`` answers as the warehouse did when the release was made.
"""

from warehouse.files import PACK_MANIFEST
from warehouse.release.audit import Mismatch, diff, diff_lines, verify, verify_target
from warehouse.release.frozen import (
    MANIFEST,
    FrozenWarehouse,
    describe,
    list_releases,
    open_pack,
    open_release,
    read_manifest,
    releases_dir,
    resolve,
)
from warehouse.release.manifest import create_release
from warehouse.release.packing import pack

__all__ = [
    "FrozenWarehouse",
    "MANIFEST",
    "Mismatch",
    "PACK_MANIFEST",
    "create_release",
    "describe",
    "diff",
    "diff_lines",
    "list_releases",
    "open_pack",
    "open_release",
    "pack",
    "read_manifest",
    "releases_dir",
    "resolve",
    "verify",
    "verify_target",
]
