"""KiDS-DR4 cutout loader. No public KiDS sample exists, so every file here is SIMULATED: built
by the tests from the published description (one HDF5 file per class, an ``image`` column of
shape (N, 36, 36, 4) channels-last in u, g, r, i, a ``SPECTYPE`` string column), with
``SIMULATED`` attributes saying so."""

from __future__ import annotations

import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest
from astropy.table import Table
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from loaders.images import decode_image, label_mapping
from loaders.kids import KIDS_BANDS, SPECTYPE_LABELS, load_kids_cutouts, read_kids_hdf5
from warehouse.errors import LoadError
from warehouse.healpix import spatial_index


def simulated_kids_file(
    path, spectype, n, *, seed=0, layout="group", positions=True, dtype=np.float32, ids=False
):
    """A SIMULATED KiDS-like cutout file; returns (images, ra, dec)."""
    rng = np.random.default_rng(seed)
    images = rng.normal(0, 1e-11, size=(n, 36, 36, 4)) * 10 ** rng.uniform(0, 3, (n, 1, 1, 4))
    images = images.astype(dtype)
    ra = 180.0 + rng.uniform(0, 2, n)
    dec = -1.0 + rng.uniform(0, 2, n)
    cols = {"image": images, "SPECTYPE": np.array([spectype] * n, dtype="S8")}
    if positions:
        cols["RA"], cols["DEC"] = ra, dec
    if ids:
        cols["ID"] = np.array([f"KiDSDR4 J{k:06d}" for k in range(n)], dtype="S20")
    if layout == "group":
        with h5py.File(path, "w") as fh:
            fh.attrs["SIMULATED"] = True
            group = fh.create_group("cutouts")
            for name, values in cols.items():
                group[name] = values
    else:  # what astropy.table.Table.write(format="hdf5") writes: one compound dataset
        Table(cols).write(path, path="data", format="hdf5")
        with h5py.File(path, "a") as fh:
            fh["data"].attrs["SIMULATED"] = True
    return images, ra, dec


def test_three_class_files_stack_with_stable_labels_and_exact_pixels(make_warehouse, tmp_path):
    files, truth = [], {}
    for k, (cls, n, layout) in enumerate(
        (("STAR", 4, "group"), ("QSO", 3, "table"), ("GALAXY", 5, "group"))
    ):
        path = tmp_path / f"simulated_{cls.lower()}.h5"
        images, ra, dec = simulated_kids_file(path, cls, n, seed=k, layout=layout)
        files.append(path)
        for i in range(n):
            truth[int(spatial_index(ra[i : i + 1], dec[i : i + 1])[0])] = (cls, images[i])
    wh = make_warehouse()
    assert load_kids_cutouts(wh, files) == 12
    rows = wh.query(
        "SELECT object_id, spectype, spectype_label, bands, simulated, u_height, i_width, "
        "r_pixel_scale, g_filter FROM kids_cutouts"
    ).to_pylist()
    assert len(rows) == 12
    for row in rows:
        cls, _ = truth[row["object_id"]]
        assert row["spectype"] == cls and row["spectype_label"] == SPECTYPE_LABELS[cls]
        assert row["bands"] == "u,g,r,i" and row["simulated"] is True
        assert (row["u_height"], row["i_width"], row["r_pixel_scale"]) == (36, 36, 0.2)
        assert row["g_filter"] == "KiDS-g"
    assert SPECTYPE_LABELS == {"GALAXY": 0, "QSO": 1, "STAR": 2}
    # the mapping is in the stored table's metadata, and the pixel columns are hidden from SQL
    cv = wh.current_version("kids_cutouts")
    assert label_mapping(cv.schema.field("spectype_label")) == SPECTYPE_LABELS
    assert "u_image" not in wh.query("SELECT * FROM kids_cutouts LIMIT 0").column_names
    # channels-last in the file, channels-first per band here, the very same float32 values
    stored = pq.read_table(cv.files()).to_pylist()
    for row in stored:
        _, images = truth[row["object_id"]]
        for k, band in enumerate(KIDS_BANDS):
            plane = decode_image(row[f"{band}_image"], (36, 36))
            assert plane.tobytes() == np.ascontiguousarray(images[:, :, k]).tobytes()


def test_a_file_loads_once_and_an_id_column_is_kept(make_warehouse, tmp_path):
    path = tmp_path / "simulated_galaxies.h5"
    simulated_kids_file(path, "GALAXY", 3, ids=True)
    wh = make_warehouse()
    messages: list[str] = []
    load_kids_cutouts(wh, [path], echo=messages.append)
    load_kids_cutouts(wh, [path], echo=messages.append)
    assert "GALAXY 3" in messages[0] and "already loaded" in messages[1]
    ids = wh.query("SELECT kids_id FROM kids_cutouts ORDER BY kids_id").column(0).to_pylist()
    assert ids == ["KiDSDR4 J000000", "KiDSDR4 J000001", "KiDSDR4 J000002"]


def test_without_positions_the_requirement_is_stated(tmp_path):
    path = tmp_path / "simulated_nopos.h5"
    simulated_kids_file(path, "STAR", 2, positions=False)
    with pytest.raises(LoadError, match=r"no RA/DEC columns.*needs RA and DEC in degrees"):
        read_kids_hdf5(path)


def test_an_unknown_spectype_is_named_with_its_row(tmp_path):
    path = tmp_path / "simulated_bad.h5"
    simulated_kids_file(path, "STAR", 2)
    with h5py.File(path, "a") as fh:
        fh["cutouts/SPECTYPE"][1] = b"BROWNDWF"
    with pytest.raises(LoadError, match="SPECTYPE, row 2: 'BROWNDWF' is not one of GALAXY, QSO"):
        read_kids_hdf5(path)


def test_one_object_twice_in_a_file_is_named_with_its_rows(tmp_path):
    """Two rows with one ID at two positions loaded as two objects (the key is the position)."""
    path = tmp_path / "simulated_twice.h5"
    simulated_kids_file(path, "GALAXY", 3, ids=True)
    with h5py.File(path, "a") as fh:
        fh["cutouts/ID"][2] = fh["cutouts/ID"][0]
    with pytest.raises(LoadError, match="rows 1 and 3: both are KiDS object 'KiDSDR4 J000000'"):
        read_kids_hdf5(path)


@pytest.mark.parametrize("column", ["RA", "ID"])
def test_a_column_shorter_than_the_images_is_refused(tmp_path, column):
    """5 images with 3 RA values raised an ArrowInvalid traceback (or an IndexError)."""
    path = tmp_path / "simulated_short.h5"
    simulated_kids_file(path, "STAR", 5, ids=True)
    with h5py.File(path, "a") as fh:
        values = fh[f"cutouts/{column}"][:3]
        del fh[f"cutouts/{column}"]
        fh[f"cutouts/{column}"] = values
    with pytest.raises(LoadError, match=rf"{column} has shape \(3,\), but there are 5 images"):
        read_kids_hdf5(path)


def test_channels_first_images_are_refused(tmp_path):
    path = tmp_path / "simulated_chw.h5"
    with h5py.File(path, "w") as fh:
        fh["image"] = np.zeros((2, 4, 36, 36), np.float32)
        fh["SPECTYPE"] = np.array([b"STAR", b"QSO"])
        fh["RA"], fh["DEC"] = np.array([1.0, 2.0]), np.array([0.0, 0.0])
    with pytest.raises(LoadError, match=r"shape \(2, 4, 36, 36\); expected \(N, S, S, 4\)"):
        read_kids_hdf5(path)


def test_float64_pixels_are_kept_only_when_exact(tmp_path):
    exact = tmp_path / "simulated_exact64.h5"
    images, _, _ = simulated_kids_file(exact, "QSO", 2, dtype=np.float32)
    with h5py.File(exact, "a") as fh:
        del fh["cutouts/image"]
        fh["cutouts/image"] = images.astype(np.float64)  # float32 values held in float64
    table = read_kids_hdf5(exact)
    assert decode_image(table.column("r_image")[0].as_py(), (36, 36)).tobytes() == (
        np.ascontiguousarray(images[0, :, :, 2]).tobytes()
    )
    lossy = tmp_path / "simulated_lossy64.h5"
    simulated_kids_file(lossy, "QSO", 2, dtype=np.float64)
    with pytest.raises(LoadError, match="not exactly representable as float32"):
        read_kids_hdf5(lossy)


def test_not_hdf5_and_no_table_are_clear_errors(tmp_path):
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5")
    with pytest.raises(LoadError, match="not a readable HDF5 file"):
        read_kids_hdf5(junk)
    empty = tmp_path / "empty.h5"
    with h5py.File(empty, "w") as fh:
        fh["other"] = np.zeros(3)
    with pytest.raises(LoadError, match="no table with an 'image' and a 'SPECTYPE' column"):
        read_kids_hdf5(empty)


@settings(max_examples=25, deadline=None)
@given(
    images=hnp.arrays(
        np.float32,
        (2, 5, 5, 4),
        elements=st.floats(width=32, allow_nan=True, allow_infinity=True),
    )
)
def test_any_float32_values_survive_bit_for_bit(tmp_path_factory, images):
    path = tmp_path_factory.mktemp("kids") / "simulated.h5"
    with h5py.File(path, "w") as fh:
        fh["image"] = images
        fh["SPECTYPE"] = np.array([b"GALAXY", b"STAR"])
        fh["RA"], fh["DEC"] = np.array([10.0, 11.0]), np.array([1.0, 2.0])
    table = read_kids_hdf5(path)
    for k, band in enumerate(KIDS_BANDS):
        for i in range(2):
            got = decode_image(table.column(f"{band}_image")[i].as_py(), (5, 5))
            assert got.tobytes() == np.ascontiguousarray(images[i, :, :, k]).tobytes()
