"""The dataset card (``README.md``) of an hf export: YAML metadata the Hub and ``datasets``
read (configs, splits, features, licence, citation) and text stating how the rows were chosen
(cuts, deduplication, split rule), from which release and manifest, and what is simulated."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from warehouse.citations import SPECZ_CITATIONS
from warehouse.db import quote_ident
from warehouse.export.options import ExportOptions
from warehouse.files import file_sha256

if TYPE_CHECKING:
    from warehouse.core import Warehouse

__all__ = ["dataset_card", "manifest_sha256"]

_RULE_VIEWS = ("quality_flags", "quality_passed", "deduplicated", "ml_objects")


def manifest_sha256(wh: Warehouse) -> str | None:
    """SHA-256 of the release manifest ``wh`` was opened from (None for the live warehouse)."""
    release_dir = getattr(wh, "release_dir", None)
    if release_dir is None:
        return None
    path = Path(release_dir) / "manifest.json"
    return file_sha256(path) if path.exists() else None


def specz_citations(wh: Warehouse) -> list[str]:
    """The spectroscopic surveys whose ``specz_flag_*`` is set on some loaded spec-z row."""
    if wh.current_version("hsc_specz") is None:
        return []
    names = set(wh.query("SELECT * FROM hsc_specz LIMIT 0").column_names)
    flags = [f for f in SPECZ_CITATIONS if f in names]
    if not flags:
        return []
    used = wh.query(
        "SELECT "
        + ", ".join(f"bool_or({quote_ident(f)}) AS {quote_ident(f)}" for f in flags)
        + " FROM hsc_specz"
    ).to_pylist()[0]
    return [SPECZ_CITATIONS[f] for f in flags if used[f]]


def _listed(value: object) -> list:
    return list(value) if isinstance(value, list | tuple) else []


def _yaml_str(text: str) -> str:
    return json.dumps(str(text))  # a JSON string is a valid YAML double-quoted scalar


def _yaml_features(features: Mapping[str, dict]) -> list[str]:
    lines = ["  features:"]
    for name, f in features.items():
        lines.append(f"  - name: {_yaml_str(name)}")
        if f["_type"] == "Array3D":
            lines += [
                "    dtype:",
                "      array3_d:",
                f"        shape: [{', '.join(str(x) for x in f['shape'])}]",
                f"        dtype: {f['dtype']}",
            ]
        elif f["_type"] == "List":
            lines += [f"    list: {f['feature']['dtype']}", f"    length: {f['length']}"]
        else:
            lines.append(f"    dtype: {f['dtype']}")
    return lines


def _rule_text(wh: Warehouse) -> list[str]:
    """The header comments of the views that make the cuts, the deduplication and the split."""
    out = []
    for m in wh.models():
        if m.kind != "view" or m.name not in _RULE_VIEWS:
            continue
        comments = []
        for line in m.text.splitlines():
            if not line.startswith("--"):
                break
            comments.append(line[2:].strip())
        if comments:
            out += [f"- `{m.name}` ({m.path}):", *(f"  {c}" for c in comments)]
    return out


def dataset_card(
    wh: Warehouse,
    attrs: Mapping[str, object],
    features: Mapping[str, dict],
    rows: Mapping[str, int],
    opts: ExportOptions,
    data_bytes: int,
) -> str:
    """The card's text. ``attrs``: the HDF5 attributes of one split's export (provenance);
    ``features``: the datasets features; ``rows``: rows per split."""
    total = sum(rows.values()) or 1
    citations = [str(c) for c in _listed(attrs.get("citation"))]
    citations += [c for c in specz_citations(wh) if c not in citations]
    simulated = str(attrs.get("data", ""))
    catalog = [str(c) for c in _listed(attrs.get("catalog_simulated")) if str(c) != "none"]
    splits = wh.config.splits
    manifest = manifest_sha256(wh)
    release = str(attrs.get("release", "none"))
    lines = ["---", "configs:", "- config_name: default", "  data_files:"]
    for s in rows:
        lines += [f"  - split: {s}", f"    path: data/{s}-*.parquet"]
    lines += ["dataset_info:", *_yaml_features(features), "  splits:"]
    for s, n in rows.items():
        lines += [
            f"  - name: {s}",
            f"    num_bytes: {int(data_bytes * n / total)}",
            f"    num_examples: {n}",
        ]
    lines += [
        "license: other",
        "license_name: hsc-ssp-data-release-terms",
        "license_details: "
        + _yaml_str(
            "HSC-SSP public data release terms: cite the HSC-SSP papers and include the "
            "acknowledgement below; spectroscopic redshifts: cite each survey used."
        ),
        "citation:",
        *(f"- {_yaml_str(c)}" for c in citations),
        "tags:",
        "- astronomy",
        "- galaxies",
        "- photometric-redshift",
    ]
    if simulated in ("simulated", "mixed") or catalog:
        lines.append("- simulated")
    lines.append("---")
    bands = ", ".join(str(b) for b in _listed(attrs.get("bands")))
    size = attrs.get("size")
    lines += [
        "",
        "# Galaxy images and catalog (galaxy-warehouse export)",
        "",
        f"Written by galaxy-warehouse {attrs.get('gwh_version', '')} (`gwh export --format hf`). "
        f"Images: `image` (bands {bands}; {size} x {size} px at {attrs.get('pixel_scale')} "
        "arcsec/px), float32, channels first, never rescaled; every catalog column of the "
        "query, with its type. Rows are ordered by `_healpix_29`, then `object_id`.",
        "",
        f"- Splits: {', '.join(f'{s} {n:,}' for s, n in rows.items())}.",
        f"- Release: {release}; manifest SHA-256: {manifest or 'none (live warehouse)'}.",
        f"- Data release: {attrs.get('data_release', 'unknown')}.",
        f"- Pixel values: {attrs.get('image_units', '')}.",
        f"- Simulated: the images are {simulated or 'unknown'}"
        + (
            " (SIMULATED: synthetic pixels, `image_simulated` marks each row); the catalog "
            "values are whatever the loaded tables hold (the `simulated` column, where present, "
            "says which are synthetic)."
            if simulated in ("simulated", "mixed")
            else "; no simulated data among the images."
        ),
        "- Simulated catalog: "
        + (
            "SIMULATED rows were loaded from " + "; ".join(catalog) + "."
            if catalog
            else "no input file of the catalog tables this query reads is marked simulated."
        ),
        "- NULLs: integer, boolean and text NULLs are Parquet NULLs; a floating-point NULL is "
        "NaN. 64-bit ids are int64, exact.",
        "",
        "## How the rows were chosen",
        "",
        "The query (SQL over the warehouse's views; parameters in `sql_params`):",
        "",
        "```sql",
        str(attrs.get("sql", "")),
        "```",
        "",
        f"Parameters of the {attrs.get('split', '')} split: `{attrs.get('sql_params', '[]')}` "
        "(each split binds its own name).",
        "",
        "Cuts and deduplication (the views' own statements of their rules):",
        "",
        *_rule_text(wh),
        "",
        "## Split rule",
        "",
        f"Fractions (train / validation / test): {splits.train} / {splits.validation} / "
        f"{splits.test}; salt `{splits.salt}`; mode `{attrs.get('split_mode', splits.mode)}`. "
        "The split of an object is a pure function of (salt, key): key = `object:<object_id>` "
        "in `object` mode, `healpix<order>:<cell>` (the object's HEALPix cell) in `healpix` "
        "mode. `u = split_unit(salt, key)`: the first 8 bytes of MD5(`salt:key`) read as a "
        "little-endian unsigned 64-bit integer, shifted right by 11 bits, over 2^53; train if "
        "u < train, validation if u < train + validation, else test. In Python: "
        '`u = (int.from_bytes(hashlib.md5(f"{salt}:{key}".encode()).digest()[:8], "little") '
        ">> 11) / 2**53`.",
        "",
    ]
    if opts.limit is not None:
        lines += [
            "## Subset",
            "",
            f"`--{'subset ' + opts.subset if opts.subset else 'limit'}`: at most "
            f"{opts.limit:,} objects per split, the first in the order "
            f"`split_unit('{splits.salt}', 'object:' || object_id), object_id`; a smaller "
            "subset is contained in a larger one, and a rebuild selects the same objects.",
            "",
        ]
    lines += [
        "## Citation",
        "",
        *(f"- {c}" for c in citations),
        "",
        "## Acknowledgement",
        "",
        str(attrs.get("acknowledgement", "")),
        "",
    ]
    return "\n".join(lines)
