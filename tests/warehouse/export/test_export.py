"""HDF5 export: GalaxiesML layout, row alignment, determinism, streaming, failure modes."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.warehouse.cutouts.test_cutouts import (
    BANDS,
    build_warehouse,
    code,
    copy_warehouse,
    ingest_coded,
    objects,
    pixel_value,
    write_coded_fits,
)
from warehouse import __version__
from warehouse.cutouts import ingest_arrays, ingest_cutouts
from warehouse.errors import ExportError
from warehouse.export import (
    ExportOptions,
    base_query,
    export_all_splits,
    export_hdf5,
    export_hf,
    export_release_splits,
    parse_bands,
)
from warehouse.images.fit import fit_to_size
from warehouse.images.masks import HSC_MASK_BITS

REPO = Path(__file__).resolve().parents[3]
NO_DATA = 1 << HSC_MASK_BITS["NO_DATA"]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def populated(tmp_path_factory):
    """Every ml_objects row has 5-band 12x12 cutouts whose pixels encode its object_id;
    cutouts partitions hold at most 6 rows, so an export crosses many of them."""
    wh = build_warehouse(tmp_path_factory.mktemp("export-base"))
    ingest_coded(wh, [r[0] for r in objects(wh)])
    return wh


@pytest.fixture
def fresh(populated, tmp_path):
    """A copy to change."""
    return copy_warehouse(populated, tmp_path / "wh")


def test_every_row_describes_the_galaxy_of_its_image(populated, tmp_path):
    result = export_hdf5(populated, tmp_path / "train.h5", split="train", progress=False)
    expected = populated.query(
        "SELECT object_id, _healpix_29, specz_redshift, specz_name FROM ml_objects "
        "WHERE split = 'train' ORDER BY _healpix_29, object_id"
    ).to_pylist()
    assert result.rows == len(expected) > 10
    with h5py.File(result.path) as h5:
        image = h5["image"]
        assert image.shape == (len(expected), 5, 127, 127) and image.dtype == np.float32
        assert image.chunks == (1, 5, 127, 127) and image.compression is None
        ids = h5["object_id"][:]
        assert h5["object_id"].dtype == np.int64
        assert ids.tolist() == [r["object_id"] for r in expected]  # _healpix_29, object_id order
        assert h5["_healpix_29"][:].tolist() == [r["_healpix_29"] for r in expected]
        assert np.allclose(h5["specz_redshift"][:], [r["specz_redshift"] for r in expected])
        names = [s.decode() for s in h5["specz_name"][:]]
        assert names == [r["specz_name"] for r in expected]
        assert set(h5["split"].asstr()[:]) == {"train"}
        for i, oid in enumerate(ids):
            centre = image[i, :, 63, 63]
            assert centre.tolist() == [pixel_value(oid, b) for b in range(5)]
            # 12x12 zero-padded to 127: centre pixel 6 lands on 63, stored rows on 57..68
            column = image[i, 0, :, 63]
            assert (column[57:69] == pixel_value(oid, 0)).all()
            assert (column[:57] == 0).all() and (column[69:] == 0).all()
        assert set(h5["fit_action"].asstr()[:]) == {"padded"}
        assert h5["mask"].dtype == np.int32 and h5["variance"].dtype == np.float32
        assert h5["mask"][0, 0, 63, 63] == 0 and h5["mask"][0, 0, 0, 0] == NO_DATA
        assert h5["variance"][0, 0, 63, 63] == 0.5 and np.isinf(h5["variance"][0, 0, 0, 0])
        assert h5["zeropoint"].shape == (len(ids), 5) and np.all(h5["zeropoint"][:] == 27.0)
        assert h5["image_simulated"].dtype == bool and h5["image_simulated"][:].all()
        assert h5["isprimary"].dtype == bool  # booleans stay booleans
        for name, dset in h5.items():
            assert dset.shape[0] == len(ids), name  # every dataset has N rows


def test_attributes(populated, tmp_path):
    export_hdf5(populated, tmp_path / "v.h5", split="validation", progress=False)
    with h5py.File(tmp_path / "v.h5") as h5:
        a = dict(h5.attrs)
        n = h5["image"].shape[0]
    assert a["gwh_version"] == __version__
    assert a["sql"] == 'SELECT * FROM "ml_objects" WHERE split = ?'
    assert a["sql_params"] == '["validation"]' and a["split"] == "validation"
    assert list(a["bands"]) == list(BANDS) and a["size"] == 127
    assert a["pixel_scale"] == 0.168 and a["row_count"] == n and a["data"] == "simulated"
    assert a["row_order"] == "_healpix_29, object_id"


def test_huggingface_datasets_reads_the_file(populated, tmp_path):
    datasets = pytest.importorskip("datasets")
    path = tmp_path / "test.h5"
    export_hdf5(populated, path, split="test", options=ExportOptions(size=16), progress=False)
    ds = datasets.load_dataset(
        "hdf5", data_files=str(path), split="train", cache_dir=str(tmp_path / "hf")
    )
    with h5py.File(path) as h5:
        n = h5["image"].shape[0]
        assert ds.num_rows == n
        assert ds.features["object_id"].dtype == "int64"
        assert ds.features["isprimary"].dtype == "bool"
        assert ds.features["specz_name"].dtype == "string"
        assert ds.features["image"].shape == (5, 16, 16)
        for i in (0, n - 1):
            row = ds[i]
            assert row["object_id"] == int(h5["object_id"][i])
            assert row["specz_name"] == h5["specz_name"].asstr()[i]
            assert np.array_equal(np.asarray(row["image"], np.float32), h5["image"][i])
            assert np.asarray(row["image"])[2, 8, 8] == pixel_value(row["object_id"], 2)


EXPORT_SCRIPT = """
import sys
from warehouse.core import Warehouse
from warehouse.export import ExportOptions, export_hdf5
export_hdf5(Warehouse.open(sys.argv[1]), sys.argv[2], split="train",
            options=ExportOptions(size=32), progress=False)
"""


def test_same_query_same_warehouse_same_bytes(populated, tmp_path):
    opts = ExportOptions(size=32)
    a = export_hdf5(populated, tmp_path / "a.h5", split="train", options=opts, progress=False)
    b = export_hdf5(populated, tmp_path / "b.h5", split="train", options=opts, progress=False)
    subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(EXPORT_SCRIPT),
            str(populated.root),
            tmp_path / "c.h5",
        ],
        check=True,
        cwd=REPO,
    )
    assert sha256(a.path) == sha256(b.path) == sha256(tmp_path / "c.h5")
    with h5py.File(a.path) as h5:  # the bytes carry no object timestamps
        assert h5.id.get_create_plist() is not None
        assert h5["image"].id.get_create_plist().get_obj_track_times() == 0


def test_size_64_and_cropping_keep_the_centre(fresh, tmp_path):
    ids = [r[0] for r in objects(fresh, limit=3)]
    grad = np.arange(80 * 80, dtype=np.float32).reshape(80, 80)  # tells rows from columns
    ingest_arrays(
        fresh,
        ids,
        {b: np.stack([grad + pixel_value(i, k) for i in ids]) for k, b in enumerate(BANDS)},
        simulated=True,
        source="gradient",
    )
    sql = f"SELECT object_id FROM hsc_forced WHERE object_id IN ({', '.join(map(str, ids))})"
    r = export_hdf5(
        fresh,
        tmp_path / "crop.h5",
        sql=sql,
        options=ExportOptions(size=64, mask=False, variance=False),
        progress=False,
    )
    assert r.fit_actions == {"cropped": 3}
    with h5py.File(r.path) as h5:
        for i, oid in enumerate(h5["object_id"][:]):
            want = fit_to_size(grad + pixel_value(oid, 3), 64).array
            assert np.array_equal(h5["image"][i, 3], want)
        assert set(h5["fit_action"].asstr()[:]) == {"cropped"}
        assert "mask" not in h5 and "variance" not in h5


def test_missing_band_is_an_error_naming_the_objects(fresh, tmp_path):
    ids = [r[0] for r in objects(fresh, view="hsc_forced", limit=400)]
    in_ml = {r[0] for r in objects(fresh)}
    extra = [i for i in ids if i not in in_ml][:2]
    ingest_coded(fresh, extra, bands=("g", "r"))
    sql = f"SELECT object_id, ra FROM hsc_forced WHERE object_id IN ({extra[0]}, {extra[1]})"
    with pytest.raises(ExportError) as err:
        export_hdf5(fresh, tmp_path / "x.h5", sql=sql, progress=False)
    msg = str(err.value)
    # one line: the bands that lack the same objects said once (a line per band before)
    assert msg.startswith("cannot export: bands i,z,y: 2 object(s) have no cutout (e.g. ")
    assert str(min(extra)) in msg and "\n" not in msg
    assert "--allow-missing-bands" in msg
    assert not (tmp_path / "x.h5").exists()
    # two problems (band i lacks one object, z and y both) are one line too: a line each before
    ingest_coded(fresh, extra[:1], bands=("i",))
    with pytest.raises(ExportError) as err:
        export_hdf5(fresh, tmp_path / "x.h5", sql=sql, progress=False)
    assert "\n" not in str(err.value) and str(err.value).count("; bands ") == 1, str(err.value)


def test_allow_missing_bands_writes_nan_and_flags(fresh, tmp_path):
    all_ids = [r[0] for r in objects(fresh, view="hsc_forced", limit=400)]
    in_ml = {r[0] for r in objects(fresh)}
    extra = [i for i in all_ids if i not in in_ml][:3]
    ingest_coded(fresh, extra[:2], bands=("g", "r"))  # extra[2] has no cutout at all
    sql = "SELECT object_id FROM hsc_forced WHERE object_id IN ({})".format(
        ", ".join(map(str, extra))
    )
    r = export_hdf5(
        fresh,
        tmp_path / "m.h5",
        sql=sql,
        options=ExportOptions(size=16, allow_missing_bands=True),
        progress=False,
    )
    assert r.missing == {"g": 1, "r": 1, "i": 3, "z": 3, "y": 3}
    with h5py.File(r.path) as h5:
        ids = h5["object_id"][:].tolist()
        for i, oid in enumerate(ids):
            has = oid != extra[2]
            assert h5["missing_g"][i] == (not has) and h5["missing_i"][i]
            assert np.isnan(h5["image"][i, 2]).all() and (h5["mask"][i, 2] == NO_DATA).all()
            assert np.isnan(h5["variance"][i, 4]).all()
            if has:
                assert h5["image"][i, 1, 8, 8] == pixel_value(oid, 1)
                assert h5["fit_action"].asstr()[i] == "padded"
            else:
                assert np.isnan(h5["image"][i]).all()
                assert h5["fit_action"].asstr()[i] == "missing"


def test_hf_rows_without_images_cost_little_and_flag_bands_in_band_order(fresh, tmp_path):
    all_ids = [r[0] for r in objects(fresh, view="hsc_forced", limit=400)]
    in_ml = {r[0] for r in objects(fresh)}
    extra = [i for i in all_ids if i not in in_ml][:40]
    ingest_coded(fresh, extra[:1])  # one imaged object, 39 with no cutout at all
    sql = "SELECT object_id, 'test' AS split FROM hsc_forced WHERE object_id IN ({})".format(
        ", ".join(map(str, extra))
    )
    opts = ExportOptions(size=64, allow_missing_bands=True)
    r = export_hf(fresh, tmp_path / "hf", splits=["test"], sql=sql, options=opts, progress=False)
    (shard,) = r.path.glob("data/*.parquet")
    meta = pq.ParquetFile(shard).metadata
    names = meta.schema.to_arrow_schema().names
    assert [n for n in names if n.startswith("missing_")] == [f"missing_{b}" for b in "grizy"]
    planes = [meta.row_group(g).column(0) for g in range(meta.num_row_groups)]  # image
    assert {c.compression for c in planes} == {"ZSTD"}  # the NaN planes compress to nothing
    # 40 rows x 3 planes x 5 x 64 x 64 x 4 bytes = 9.8 MB raw; one row's noise remains
    assert shard.stat().st_size < 5 * 64 * 64 * 4 * 3 * 3
    table = pq.read_table(shard)
    image = np.asarray(table.column("image").to_pylist(), dtype=np.float32)
    imaged = table.column("object_id").to_pylist().index(extra[0])
    assert image[imaged, 1, 32, 32] == pixel_value(extra[0], 1)
    assert np.isnan(np.delete(image, imaged, axis=0)).all()


def test_no_mask_no_variance_and_compression(populated, tmp_path):
    for comp in ("lzf", "gzip"):
        r = export_hdf5(
            populated,
            tmp_path / f"{comp}.h5",
            split="test",
            options=ExportOptions(size=16, compression=comp, mask=False, variance=False),
            progress=False,
        )
        with h5py.File(r.path) as h5:
            assert h5["image"].compression == comp and set(h5.attrs["planes"]) == {"image"}
            assert "mask" not in h5 and "variance" not in h5
            oid = h5["object_id"][0]
            assert h5["image"][0, 0, 8, 8] == pixel_value(oid, 0)


def test_bands_choose_and_order_the_image_planes(populated, tmp_path):
    bands = parse_bands("irg", populated.config.bands)
    assert bands == ("i", "r", "g") and parse_bands("g,r", BANDS) == ("g", "r")
    with pytest.raises(ExportError, match="not a configured band"):
        parse_bands("gq", BANDS)
    r = export_hdf5(
        populated,
        tmp_path / "irg.h5",
        split="test",
        options=ExportOptions(size=16, bands=bands),
        progress=False,
    )
    with h5py.File(r.path) as h5:
        oid = h5["object_id"][0]
        assert h5["image"].shape[1] == 3 and list(h5.attrs["bands"]) == ["i", "r", "g"]
        assert h5["image"][0, :, 8, 8].tolist() == [pixel_value(oid, k) for k in (2, 1, 0)]


def test_sql_export_nulls_and_column_types(fresh, tmp_path):
    sql = (
        "SELECT object_id, CASE WHEN object_id % 2 = 0 THEN tract END AS tract_or_null, "
        "CASE WHEN object_id % 3 = 0 THEN NULL ELSE patch_s END AS patch_or_null, "
        "NULL::DOUBLE AS nothing, isprimary, 1.5::DECIMAL(4, 2) AS dec_value, "
        "DATE '2020-01-02' AS day, "
        "CASE WHEN object_id % 2 = 0 THEN object_id + 9007199254740993 END AS big_or_null, "
        "CASE WHEN object_id % 2 = 0 THEN isprimary END AS flag_or_null, "
        "object_id::HUGEINT AS huge_id FROM ml_objects"
    )
    r = export_hdf5(fresh, tmp_path / "s.h5", sql=sql, options=ExportOptions(size=8))
    with h5py.File(r.path) as h5:
        ids = h5["object_id"][:]
        assert h5.attrs["split"] == "all" and h5.attrs["sql"] == sql
        nulls = h5["tract_or_null_isnull"][:]
        assert nulls.tolist() == (ids % 2 != 0).tolist()
        # a nullable INTEGER: float64 with NaN for NULL, every value exact
        tract = h5["tract_or_null"]
        assert tract.dtype == np.float64 and tract.attrs["sql_type"] == "int32"
        assert np.isnan(tract[:][nulls]).all() and not np.isnan(tract[:][~nulls]).any()
        assert "NaN" in tract.attrs["null"]
        # beyond 2**53 a float64 is not exact: int64 kept, NULL only in big_or_null_isnull
        big = h5["big_or_null"]
        assert big.dtype == np.int64 and "big_or_null_isnull" in big.attrs["null"]
        assert big[:][~nulls].tolist() == (ids[~nulls] + 9007199254740993).tolist()
        flag = h5["flag_or_null"]
        assert flag.dtype == np.float64 and np.isnan(flag[:][nulls]).all()
        assert set(flag[:][~nulls].tolist()) <= {0.0, 1.0}
        assert h5["patch_or_null_isnull"][:].tolist() == (ids % 3 == 0).tolist()
        assert h5["huge_id"].dtype == np.int64 and (h5["huge_id"][:] == ids).all()  # exact
        assert np.isnan(h5["nothing"][:]).all() and "nothing_isnull" not in h5
        assert "isprimary_isnull" not in h5 and h5["dec_value"][0] == 1.5
        assert h5["day"].asstr()[0] == "2020-01-02"


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT ra FROM ml_objects", "must return an integer object_id"),
        ("SELECT object_id, ra AS image FROM ml_objects", "would overwrite the export's own"),
        # the second was exported as ra_1 without a word
        ("SELECT object_id, ra, ra FROM ml_objects", "returns two columns named ra, which an"),
        # the hint named image for every clash
        (
            "SELECT object_id, ra AS zeropoint FROM ml_objects",
            "SELECT zeropoint AS zeropoint_value",
        ),
        ("SELECT object_id FROM ml_objects UNION ALL SELECT object_id FROM ml_objects", "dup"),
        ("SELECT object_id FROM ml_objects WHERE false", "returns no rows"),
        ("SELECT 1::BIGINT AS object_id", "neither in hsc_forced nor in cutouts"),
        ("SELECT object_id, [1, 2] AS l FROM ml_objects", "has no 1-D HDF5 form"),
        (
            "SELECT object_id, object_id::HUGEINT * 1000000000000 AS h FROM ml_objects",
            r"column h \(decimal128\(38, 0\)\) holds \d+, beyond signed 64-bit integers",
        ),
        ("SELECT nope FROM ml_objects", "nope"),
        # HDF5 names: these were h5py ValueError/TypeError tracebacks, or a group /a
        ('SELECT object_id, ra AS "." FROM ml_objects', "column '.' cannot name an HDF5"),
        ('SELECT object_id, ra AS "a/b" FROM ml_objects', "column 'a/b' cannot name an HDF5"),
        (
            "SELECT object_id, ra AS x_isnull, CASE WHEN ra > 0 THEN 1 END AS x FROM ml_objects",
            "column x_isnull would clash with the flag the export writes for the NULLs of x",
        ),
        # an interval has no text form pyarrow casts to (ArrowNotImplementedError)
        ("SELECT object_id, INTERVAL 1 DAY AS iv FROM ml_objects", "iv has type month_day_nano"),
        # other rows on each run: an export is the same bytes every time, or refused
        ("SELECT * FROM ml_objects LIMIT 30", "LIMIT without ORDER BY.*--limit N"),
        ("SELECT * FROM ml_objects USING SAMPLE 30 ROWS", "USING SAMPLE.*--subset"),
    ],
)
def test_bad_queries_are_clear_errors(populated, tmp_path, sql, message):
    with pytest.raises(ExportError, match=message):
        export_hdf5(populated, tmp_path / "x.h5", sql=sql, progress=False)
    assert list(tmp_path.iterdir()) == []  # nothing left behind


def test_an_unavailable_ml_objects_is_said_not_a_missing_split(make_warehouse, field_files):
    """Without forced2's flags ml_objects is unavailable: its view has one column, so an
    export said "--split needs a split column, and the query returns none. Select it too",
    advice that cannot work, instead of what is missing."""
    from loaders import registry

    wh = make_warehouse()
    wh.load(registry.get("hsc-forced"), [field_files["forced"]])
    wh.load(registry.get("hsc-specz"), [field_files["specz"]])
    ids = wh.query("SELECT object_id FROM hsc_forced ORDER BY object_id LIMIT 3").column(0)
    images = np.zeros((3, 12, 12), np.float32)
    ingest_arrays(wh, ids.to_pylist(), dict.fromkeys("grizy", images), simulated=True, source="t")
    said = "ml_objects is unavailable: photometry_flags needs columns g_sdsscentroid_flag"
    with pytest.raises(ExportError, match=f"^{said}"):
        export_hdf5(wh, wh.root.parent / "x.h5", split="train", progress=False)
    with pytest.raises(ExportError, match=f"^--all-splits: {said}"):
        export_all_splits(wh, wh.root.parent / "ds")


def test_split_needs_a_split_column_and_a_known_name(populated, tmp_path):
    with pytest.raises(ExportError, match="--split must be one of"):
        export_hdf5(populated, tmp_path / "x.h5", split="dev")
    (tmp_path / "old.h5").write_bytes(b"kept")  # a typo is named before the existing target
    with pytest.raises(ExportError, match="^--split must be one of .*got 'dev'"):
        export_hdf5(populated, tmp_path / "old.h5", split="dev")
    assert (tmp_path / "old.h5").read_bytes() == b"kept"
    (tmp_path / "old.h5").unlink()
    # what to do, not DuckDB's binder error
    with pytest.raises(ExportError, match="^--split needs a split column.*join ml_objects"):
        export_hdf5(
            populated, tmp_path / "x.h5", split="train", sql="SELECT object_id FROM hsc_forced"
        )
    with pytest.raises(ExportError, match="^--split needs a split column"):
        export_hdf5(populated, tmp_path / "x.h5", split="train", view="hsc_forced")
    with pytest.raises(ExportError, match="ml_objectz does not exist"):  # the query's own error
        export_hdf5(populated, tmp_path / "x.h5", split="train", sql="SELECT * FROM ml_objectz")
    assert not (tmp_path / "x.h5").exists()
    assert base_query(None, "select 1;", "test") == (
        "SELECT * FROM (\nselect 1\n) AS q WHERE split = ?",
        ["test"],
    )


def test_existing_target_needs_overwrite(populated, tmp_path):
    target = tmp_path / "t.h5"
    target.write_bytes(b"keep")
    with pytest.raises(ExportError, match="already exists. Use --overwrite"):
        export_hdf5(populated, target, split="test")
    assert target.read_bytes() == b"keep"
    export_hdf5(populated, target, split="test", options=ExportOptions(size=8, overwrite=True))
    assert h5py.is_hdf5(target)


def test_a_file_another_export_writes_meanwhile_is_kept(populated, tmp_path, monkeypatch):
    """Two exports to one --out at once both pass the up-front check; the second to finish
    fails and keeps the first's file, unless it is the same export (then it is kept as is)."""
    from warehouse.export import hdf5 as hdf5_module

    target = tmp_path / "t.h5"
    publish = hdf5_module.publish

    def other_export_first(src, dest, replace):  # type: ignore[no-untyped-def]
        dest.write_bytes(b"the other export's")
        return publish(src, dest, replace)

    monkeypatch.setattr(hdf5_module, "publish", other_export_first)
    with pytest.raises(ExportError, match="written by another export while this one ran"):
        export_hdf5(populated, target, split="test", options=ExportOptions(size=8))
    assert target.read_bytes() == b"the other export's"
    assert [p.name for p in tmp_path.iterdir()] == ["t.h5"]  # no temporary left
    monkeypatch.undo()
    target.unlink()
    first = export_hdf5(populated, target, split="test", options=ExportOptions(size=8))
    done = target.read_bytes()

    def same_export_first(src, dest, replace):  # type: ignore[no-untyped-def]
        dest.write_bytes(done)
        return publish(src, dest, replace)

    target.unlink()
    monkeypatch.setattr(hdf5_module, "publish", same_export_first)
    again = export_hdf5(populated, target, split="test", options=ExportOptions(size=8))
    assert again.rows == first.rows and target.read_bytes() == done


def test_an_interrupted_export_leaves_nothing_and_releases_the_lock(fresh, tmp_path, monkeypatch):
    from warehouse.export import writer as export_module

    calls = []
    real = export_module._Writer.write_partition

    def interrupted(self, k, rows, ids):
        calls.append(k)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, k, rows, ids)

    monkeypatch.setattr(export_module._Writer, "write_partition", interrupted)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(KeyboardInterrupt):
        export_hdf5(fresh, out / "train.h5", split="train", progress=False)
    assert list(out.iterdir()) == []  # no target, no temporary file or folder
    ingest_coded(fresh, [r[0] for r in objects(fresh, limit=1)])  # a writer is not locked out


def test_streams_one_cutouts_partition_at_a_time(populated, tmp_path, monkeypatch):
    from warehouse.export import writer as export_module

    seen = []
    real = export_module._Writer.write_partition

    def spy(self, k, rows, ids):
        seen.append((k, len(rows)))
        return real(self, k, rows, ids)

    monkeypatch.setattr(export_module._Writer, "write_partition", spy)
    r = export_hdf5(populated, tmp_path / "t.h5", options=ExportOptions(size=8), progress=False)
    parts = [k for k, _ in seen]
    assert parts == sorted(set(parts)) and len(parts) > 5  # each partition once, in order
    assert max(n for _, n in seen) <= populated.config.cutouts_max_rows_per_partition
    assert sum(n for _, n in seen) == r.rows


def test_all_splits(populated, tmp_path):
    results = export_all_splits(populated, tmp_path / "ds", options=ExportOptions(size=8))
    assert [r.path.name for r in results] == ["train.h5", "validation.h5", "test.h5"]
    total = populated.query("SELECT count(*) AS n FROM ml_objects").column("n")[0].as_py()
    assert sum(r.rows for r in results) == total
    for r in results:
        with h5py.File(r.path) as h5:
            assert set(h5["split"].asstr()[:]) == {r.split} == {h5.attrs["split"]}
    with pytest.raises(ExportError, match="already exist"):
        export_all_splits(populated, tmp_path / "ds")
    only_train = "SELECT * FROM ml_objects WHERE split = 'train'"
    with pytest.raises(ExportError, match="split.s. validation, test have no rows"):
        export_all_splits(populated, tmp_path / "ds2", sql=only_train)
    with pytest.raises(ExportError, match="^--all-splits needs a split column.*join ml_objects"):
        export_all_splits(populated, tmp_path / "ds2", sql="SELECT object_id FROM ml_objects")
    assert not (tmp_path / "ds2").exists()


def test_progress_bar_only_on_a_terminal(monkeypatch):
    from warehouse.export import writer as export_module

    def disabled(enabled):  # type: ignore[no-untyped-def]
        bar = export_module._progress(10, "x", enabled)
        off = bar.disable
        bar.close()  # closing disables it
        return off

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert not disabled(None)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    assert disabled(None) and not disabled(True)


def test_real_and_simulated_images_make_mixed_data(fresh, tmp_path):
    rows = objects(fresh, view="hsc_forced", limit=300)
    in_ml = {r[0] for r in objects(fresh)}
    extra = [r for r in rows if r[0] not in in_ml][:2]
    ingest_cutouts(fresh, write_coded_fits(tmp_path, extra, bands="grizy", simulated=False))
    ids = ", ".join(str(r[0]) for r in extra)
    sim = objects(fresh, limit=1)[0][0]
    sql = f"SELECT object_id FROM hsc_forced WHERE object_id IN ({ids}, {sim})"
    r = export_hdf5(fresh, tmp_path / "mixed.h5", sql=sql, options=ExportOptions(size=16))
    assert r.data == "mixed"
    with h5py.File(r.path) as h5:
        flags = dict(
            zip(h5["object_id"][:].tolist(), h5["image_simulated"][:].tolist(), strict=True)
        )
    assert flags == {extra[0][0]: False, extra[1][0]: False, sim: True}
    only_real = f"SELECT object_id FROM hsc_forced WHERE object_id IN ({ids})"
    r = export_hdf5(fresh, tmp_path / "real.h5", sql=only_real, options=ExportOptions(size=16))
    assert r.data == "real"


def test_no_cutouts_yet(tmp_path):
    wh = build_warehouse(tmp_path / "w", n=100)
    with pytest.raises(ExportError, match="no cutouts have been ingested yet"):
        export_hdf5(wh, tmp_path / "x.h5", split="train")


def test_release_pack_exporter_writes_the_three_splits(populated, tmp_path):
    paths = export_release_splits(populated, tmp_path / "splits")
    assert [p.name for p in paths] == ["train.h5", "validation.h5", "test.h5"]
    assert all(h5py.is_hdf5(p) for p in paths)


def test_pixel_encoding_helper_is_exact_in_float32():
    big = 43158034708430001 + 999_999
    assert float(np.float32(pixel_value(big, 4))) == code(big) * 8 + 4


@pytest.mark.parametrize("split", [None, "train"])
def test_full_size_chunks_are_written_directly_in_row_order(populated, tmp_path, split):
    """At the stored size (12 x 12, no fit) each galaxy's (bands, S, S) chunk is written as it
    is, in row order: the file's chunks lie at increasing addresses, uncompressed, and hold the
    same values as an export through h5py's selection path (lzf: filtered, so not direct).
    ``split`` picks rows scattered inside each cutouts partition; None takes them all."""
    opts = ExportOptions(size=12)
    r = export_hdf5(populated, tmp_path / "d.h5", split=split, options=opts, progress=False)
    slow = ExportOptions(size=12, compression="lzf")
    s = export_hdf5(populated, tmp_path / "s.h5", split=split, options=slow, progress=False)
    with h5py.File(r.path) as h5, h5py.File(s.path) as ref:
        assert r.rows > 20 and set(h5["fit_action"].asstr()[:]) == {"none"}
        for plane in ("image", "variance", "mask"):
            dset = h5[plane]
            assert dset.compression is None and dset.id.get_num_chunks() == r.rows
            infos = [dset.id.get_chunk_info(i) for i in range(r.rows)]
            assert [i.chunk_offset[0] for i in infos] == list(range(r.rows))
            addresses = [i.byte_offset for i in infos]
            assert addresses == sorted(addresses)
            assert {i.size for i in infos} == {5 * 12 * 12 * 4}
            assert np.array_equal(dset[:], ref[plane][:])
        ids = h5["object_id"][:]
        expected = [[pixel_value(oid, b) for b in range(5)] for oid in ids]
        assert h5["image"][:, :, 6, 6].tolist() == expected
        assert (h5["variance"][:] == 0.5).all() and (h5["mask"][:] == 0).all()
