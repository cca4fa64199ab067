"""A SIMULATED HSC-like field: forced photometry and spec-z tables with the real PDR2 column names.

No public repository holds real joined forced + specz rows, so the demo, tests and benchmarks use
this generator. Everything it makes is simulated and says so (file names, FITS headers, the
``simulated`` note in each table's metadata). What is realistic about it:

* columns, types and units of ``pdr2_wide.forced`` / ``forced2`` / ``specz`` (116 forced columns);
* 64-bit object_ids of the size HSC uses (about 4.3e16, far beyond float64's exact 2**53);
* magnitudes from a redshift-dependent galaxy population, errors from the HSC Wide 5-sigma depths
  (g 26.5, r 26.1, i 25.9, z 25.1, y 24.4), fluxes in nJy (AB zeropoint 31.4);
* flags set at rates of a few per cent, failed measurements as NaN, a few -99 sentinels;
* a spec-z mixture of surveys (SDSS/GAMA, VIPERS/DEEP3, zCOSMOS/3D-HST, PRIMUS) with their typical
  errors, 9.9999 sentinels, insecure flags;
* planted duplicates: objects with two spec-z entries, and spec-z sources matched to two objects.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from warehouse.store.hsc_columns import column_type, forced_columns, specz_columns

BANDS = ("g", "r", "i", "z", "y")
DEPTH_5SIGMA = {"g": 26.5, "r": 26.1, "i": 25.9, "z": 25.1, "y": 24.4}
NJY_ZEROPOINT = 31.4  # AB magnitude of 1 nJy

FORCED_BASE = (
    "object_id",
    "ra",
    "dec",
    "tract",
    "patch",
    "patch_s",
    "parent_id",
    "nchild",
    "isprimary",
    "skymap_id",
    "detect_ispatchinner",
)
FORCED_PER_BAND = (
    "cmodel_mag",
    "cmodel_magsigma",
    "cmodel_flux",
    "cmodel_fluxsigma",
    "cmodel_flag",
    "pixelflags_edge",
    "pixelflags_interpolatedcenter",
    "pixelflags_saturatedcenter",
    "pixelflags_crcenter",
    "pixelflags_bad",
    "extendedness_value",
    "inputcount_value",
)
FORCED2_PER_BAND = (
    "psfflux_mag",
    "psfflux_magsigma",
    "psfflux_flux",
    "psfflux_fluxsigma",
    "psfflux_flag",
    "kronflux_mag",
    "kronflux_magsigma",
    "kronflux_flag",
    "sdsscentroid_flag",
)
FLAG_RATES = {
    "cmodel_flag": 0.01,
    "pixelflags_edge": 0.005,
    "pixelflags_interpolatedcenter": 0.01,
    "pixelflags_saturatedcenter": 0.004,
    "pixelflags_crcenter": 0.01,
    "pixelflags_bad": 0.005,
    "psfflux_flag": 0.01,
    "kronflux_flag": 0.02,
    "sdsscentroid_flag": 0.015,
}
SURVEYS = (
    # name, share, redshift sampler key, err per (1+z), flag column
    ("SDSS-DR14", 0.30, "low", 1.5e-4, "specz_flag_sdss_dr14"),
    ("GAMA-DR2", 0.15, "low", 3.0e-4, "specz_flag_gama_dr2"),
    ("VIPERS-PDR1", 0.15, "mid", 5.0e-4, "specz_flag_vipers_pdr1"),
    ("DEEP3", 0.10, "mid", 2.0e-4, "specz_flag_deep3_v201701"),
    ("zCOSMOS-DR3", 0.12, "wide", 4.0e-4, "specz_flag_zcosmos_dr3"),
    ("3D-HST", 0.08, "high", 3.0e-3, "specz_flag_3dhst_v4_1_5"),
    ("PRIMUS-DR1", 0.10, "mid", 5.0e-3, "specz_flag_primus_dr1"),
)


@dataclass(frozen=True)
class SimulatedField:
    forced: pa.Table  # forced columns (71)
    forced2: pa.Table  # object_id + forced2 columns (46)
    specz: pa.Table  # the 22 specz columns
    note: str = "SIMULATED HSC-like field (galaxy-warehouse simulate_catalog); not real data"

    def forced_all(self) -> pa.Table:
        """forced and forced2 joined: the 116-column HSC-like table."""
        extra = self.forced2.drop_columns(["object_id"])
        return pa.Table.from_arrays(
            self.forced.columns + extra.columns, names=self.forced.column_names + extra.column_names
        )


def _typed(name: str, values: object) -> pa.Array:
    col = forced_columns().get(name) or specz_columns().get(name)
    typ = col.type if col else column_type(name)
    return pa.array(values, typ)


def _redshifts(rng: np.random.Generator, kind: str, n: int) -> np.ndarray:
    if kind == "low":
        z = rng.lognormal(np.log(0.25), 0.5, n)
    elif kind == "mid":
        z = rng.uniform(0.45, 1.25, n)
    elif kind == "wide":
        z = rng.lognormal(np.log(0.7), 0.6, n)
    else:
        z = rng.uniform(0.6, 4.6, n)
    return np.clip(z, 0.002, 6.0)


def simulate_field(
    n_objects: int = 5000,
    seed: int = 42,
    center: tuple[float, float] = (150.1, 2.2),
    half_width_deg: float = 0.7,
    specz_fraction: float = 0.8,
) -> SimulatedField:
    """Simulate ``n_objects`` HSC-like objects and their spec-z matches (deterministic in seed)."""
    rng = np.random.default_rng(seed)
    n = int(n_objects)
    ra0, dec0 = center
    dec = rng.uniform(dec0 - half_width_deg, dec0 + half_width_deg, n)
    ra = np.mod(
        ra0 + rng.uniform(-half_width_deg, half_width_deg, n) / np.cos(np.radians(dec)), 360.0
    )
    # 64-bit ids near the size of real HSC ids, strictly increasing, never float-exact.
    object_id = 43158034708430001 + np.cumsum(rng.integers(1, 5000, n, dtype=np.int64))
    # Planted deblend pairs: a second object 0.5-1.0 arcsec from the first.
    n_pairs = max(1, int(0.02 * n))
    pair_first = rng.choice(n // 2, n_pairs, replace=False)
    pair_second = n - 1 - np.arange(n_pairs)
    offset = rng.uniform(0.5, 1.0, n_pairs) / 3600.0
    angle = rng.uniform(0, 2 * np.pi, n_pairs)
    dec[pair_second] = dec[pair_first] + offset * np.sin(angle)
    ra[pair_second] = np.mod(
        ra[pair_first] + offset * np.cos(angle) / np.cos(np.radians(dec[pair_first])), 360
    )

    survey_idx = rng.choice(len(SURVEYS), n, p=[s[1] for s in SURVEYS])
    z_true = np.empty(n)
    for k, (_name, _share, kind, _err, _flag) in enumerate(SURVEYS):
        sel = survey_idx == k
        z_true[sel] = _redshifts(rng, kind, int(sel.sum()))
    m_i = np.clip(17.0 + 4.2 * np.log10(1 + 8 * z_true) + rng.normal(0, 0.7, n), 15.5, 26.0)
    colours = {  # band minus i, redder at higher redshift
        "g": 0.9 + 0.9 * np.clip(z_true, 0, 1.2) + rng.normal(0, 0.25, n),
        "r": 0.35 + 0.45 * np.clip(z_true, 0, 1.2) + rng.normal(0, 0.12, n),
        "i": np.zeros(n),
        "z": -(0.15 + 0.25 * np.clip(z_true, 0, 1.5)) + rng.normal(0, 0.08, n),
        "y": -(0.25 + 0.35 * np.clip(z_true, 0, 1.5)) + rng.normal(0, 0.1, n),
    }
    cols: dict[str, object] = {
        "object_id": object_id,
        "ra": ra,
        "dec": dec,
        "tract": np.full(n, 9813, np.int32),
        "patch": (rng.integers(0, 9, n) * 100 + rng.integers(0, 9, n)).astype(np.int32),
        "parent_id": np.where(rng.uniform(size=n) < 0.3, object_id - 1, 0),
        "nchild": np.zeros(n, np.int32),
        "isprimary": rng.uniform(size=n) > 0.01,
        "skymap_id": np.full(n, 98130000, np.int64) + rng.integers(0, 99, n),
        "detect_ispatchinner": rng.uniform(size=n) > 0.02,
    }
    cols["patch_s"] = [f"{p // 100},{p % 100}" for p in cols["patch"]]  # type: ignore[attr-defined]
    forced2: dict[str, object] = {"object_id": object_id}
    for b in BANDS:
        mag = m_i + colours[b]
        snr = 5 * 10 ** (-0.4 * (mag - DEPTH_5SIGMA[b]))
        sigma = np.sqrt((1.0857 / snr) ** 2 + 0.002**2)
        mag_obs = mag + rng.normal(0, 1, n) * sigma
        flux = 10 ** (-0.4 * (mag_obs - NJY_ZEROPOINT))
        failed = rng.uniform(size=n) < 0.005  # failed fit: NaN, and the flag set
        sentinel = rng.uniform(size=n) < 0.002  # -99 written by a foreign pipeline
        cm = mag_obs.copy()
        cm[failed] = np.nan
        cm[sentinel] = -99.0
        cols[f"{b}_cmodel_mag"] = cm.astype(np.float32)
        cols[f"{b}_cmodel_magsigma"] = np.where(failed, np.nan, sigma).astype(np.float32)
        cols[f"{b}_cmodel_flux"] = np.where(failed, np.nan, flux)
        cols[f"{b}_cmodel_fluxsigma"] = np.where(failed, np.nan, flux * sigma / 1.0857)
        for flag in FORCED_PER_BAND:
            if flag in FLAG_RATES:
                cols[f"{b}_{flag}"] = rng.uniform(size=n) < FLAG_RATES[flag]
        cols[f"{b}_cmodel_flag"] = np.asarray(cols[f"{b}_cmodel_flag"]) | failed
        cols[f"{b}_extendedness_value"] = (rng.uniform(size=n) > 0.05).astype(np.float64)
        cols[f"{b}_inputcount_value"] = rng.integers(2, 12, n).astype(np.int32)
        psf_mag = mag_obs + rng.uniform(0.2, 1.2, n)
        psf_sigma = np.sqrt(
            (1.0857 / (5 * 10 ** (-0.4 * (psf_mag - DEPTH_5SIGMA[b])))) ** 2 + 0.002**2
        )
        kron_mag = mag_obs + rng.normal(0.05, 0.05, n)
        forced2[f"{b}_psfflux_mag"] = psf_mag.astype(np.float32)
        forced2[f"{b}_psfflux_magsigma"] = psf_sigma.astype(np.float32)
        forced2[f"{b}_psfflux_flux"] = 10 ** (-0.4 * (psf_mag - NJY_ZEROPOINT))
        forced2[f"{b}_psfflux_fluxsigma"] = forced2[f"{b}_psfflux_flux"] * psf_sigma / 1.0857
        forced2[f"{b}_psfflux_flag"] = rng.uniform(size=n) < FLAG_RATES["psfflux_flag"]
        forced2[f"{b}_kronflux_mag"] = kron_mag.astype(np.float32)
        forced2[f"{b}_kronflux_magsigma"] = (sigma * 1.2).astype(np.float32)
        forced2[f"{b}_kronflux_flag"] = rng.uniform(size=n) < FLAG_RATES["kronflux_flag"]
        forced2[f"{b}_sdsscentroid_flag"] = rng.uniform(size=n) < FLAG_RATES["sdsscentroid_flag"]
    forced_names = list(FORCED_BASE) + [f"{b}_{c}" for b in BANDS for c in FORCED_PER_BAND]
    forced = pa.table({name: _typed(name, cols[name]) for name in forced_names})
    forced2_names = ["object_id"] + [f"{b}_{c}" for b in BANDS for c in FORCED2_PER_BAND]
    f2 = pa.table({name: _typed(name, forced2[name]) for name in forced2_names})
    specz = _simulate_specz(
        rng, object_id, ra, dec, z_true, m_i, survey_idx, specz_fraction, pair_first, pair_second
    )
    return SimulatedField(forced, f2, specz)


def _simulate_specz(
    rng, object_id, ra, dec, z_true, m_i, survey_idx, fraction, pair_first, pair_second
):  # type: ignore[no-untyped-def]
    n = object_id.size
    has = rng.uniform(size=n) < fraction
    has[pair_first] = True
    has[pair_second] = False
    idx = np.flatnonzero(has)
    rows: list[dict] = []
    for i in idx:
        rows.append(
            _specz_row(rng, i, object_id[i], ra[i], dec[i], z_true[i], m_i[i], int(survey_idx[i]))
        )
    # Same object, second survey (rule 2 duplicates): 3% of objects.
    second = rng.choice(idx, max(1, int(0.03 * idx.size)), replace=False)
    for i in second:
        other = (int(survey_idx[i]) + 1 + int(rng.integers(0, len(SURVEYS) - 1))) % len(SURVEYS)
        rows.append(_specz_row(rng, i, object_id[i], ra[i], dec[i], z_true[i], m_i[i], other))
    # Same spec-z source matched to a deblended neighbour (rule 1 duplicates).
    by_object = {r["object_id"]: r for r in rows}
    for a, b in zip(pair_first, pair_second, strict=True):
        src = dict(by_object[object_id[a]])
        src["object_id"] = int(object_id[b])
        src["d_pos"] = float(
            np.hypot(
                (ra[b] - src["specz_ra"]) * np.cos(np.radians(dec[b])), dec[b] - src["specz_dec"]
            )
            * 3600
        )
        rows.append(src)
    names = list(specz_columns())
    return pa.table({name: _typed(name, [r[name] for r in rows]) for name in names})


def _specz_row(rng, i, oid, ra, dec, z, m_i, survey):  # type: ignore[no-untyped-def]
    name, _share, _kind, err_per, flag_col = SURVEYS[survey]
    err = abs(rng.normal(err_per, err_per / 3)) * (1 + z)
    redshift = z + rng.normal(0, err)
    secure = rng.uniform() < 0.88
    u = rng.uniform()
    if u < 0.005:
        redshift, err = 9.9999, 9.9999  # the archive's sentinel for "no redshift"
    elif u < 0.015:
        err = -1.0  # unknown error
    elif u < 0.02:
        err = 1.5
    dra = rng.normal(0, 0.15) / 3600 / np.cos(np.radians(dec))
    ddec = rng.normal(0, 0.15) / 3600
    row = {
        "object_id": int(oid),
        "d_pos": float(np.hypot(dra * np.cos(np.radians(dec)), ddec) * 3600),
        "d_mag": float(rng.normal(0, 0.1)),
        "specz_name": f"{name}_{i:07d}",
        "specz_ra": float(np.mod(ra + dra, 360.0)),
        "specz_dec": float(np.clip(dec + ddec, -90, 90)),
        "specz_redshift": float(redshift),
        "specz_redshift_err": float(err),
        "specz_original_flag": str(int(rng.integers(1, 5)) if secure else 0),
        "specz_flag_homogeneous": bool(secure),
        "specz_mag_i": float(m_i + rng.normal(0, 0.1)),
    }
    for s in SURVEYS:
        row[s[4]] = s[4] == flag_col
    for col in specz_columns():
        row.setdefault(col, False)
    return row


def write_archive_fits(table: pa.Table, path, *, isnull_columns: tuple[str, ...] = ()) -> None:  # type: ignore[no-untyped-def]
    """Write ``table`` as the archive's SQL service writes FITS: a binary table, plus a boolean
    ``<col>_isnull`` column for each of ``isnull_columns``. Marked SIMULATED in the header."""
    from astropy.io import fits

    columns = []
    for name in table.column_names:
        arr = table.column(name)
        typ = arr.type
        if pa.types.is_string(typ):
            values = [v if v is not None else "" for v in arr.to_pylist()]
            width = max([1] + [len(v.encode()) for v in values])
            columns.append(
                fits.Column(
                    name=name, format=f"{width}A", array=np.array(values, dtype=f"S{width}")
                )
            )
        elif pa.types.is_boolean(typ):
            columns.append(
                fits.Column(name=name, format="L", array=np.asarray(arr.fill_null(False)))
            )
        elif pa.types.is_integer(typ):
            fmt = {8: "K", 4: "J", 2: "I"}[typ.bit_width // 8]
            columns.append(fits.Column(name=name, format=fmt, array=np.asarray(arr.fill_null(0))))
        else:
            fmt = "E" if typ == pa.float32() else "D"
            columns.append(
                fits.Column(name=name, format=fmt, array=arr.to_numpy(zero_copy_only=False))
            )
        if name in isnull_columns:
            nulls = np.asarray(arr.is_null())
            columns.append(fits.Column(name=f"{name}_isnull", format="L", array=nulls))
    hdu = fits.BinTableHDU.from_columns(columns)
    hdu.header["SIMULATE"] = (True, "SIMULATED data (galaxy-warehouse), not real")
    primary = fits.PrimaryHDU()
    primary.header["SIMULATE"] = (True, "SIMULATED data (galaxy-warehouse), not real")
    fits.HDUList([primary, hdu]).writeto(path, overwrite=True)


def write_archive_csv(table: pa.Table, path, *, sql: str = "") -> None:  # type: ignore[no-untyped-def]
    """Write ``table`` as the archive's CSV output: '#' meta lines, a header, booleans as t/f."""
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv

    arrays = []
    for name in table.column_names:
        col = table.column(name)
        if pa.types.is_boolean(col.type):
            col = pc.if_else(col, "t", "f")
        arrays.append(col)
    out = pa.Table.from_arrays(arrays, names=table.column_names)
    with open(path, "wb") as fh:
        fh.write(b"# SIMULATED data (galaxy-warehouse simulate_catalog), not real\n")
        if sql:
            fh.write(f"# sql: {sql}\n".encode())
        pcsv.write_csv(out, fh, write_options=pcsv.WriteOptions(quoting_style="needed"))
