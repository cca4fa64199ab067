"""The JSON endpoints over a real HTTP server: what they return, and what they refuse."""

from __future__ import annotations

import pytest

from warehouse.core import Warehouse
from warehouse.web import open_site, start
from warehouse.web.api import SQL_PAGE_ROWS

from .conftest import fetch


def test_overview_counts_match_the_warehouse(get, demo_root):
    wh = Warehouse.open(demo_root)
    reply = get("/api/overview")
    assert reply.status == 200 and reply.headers["content-type"] == "application/json"
    info = reply.json()
    rows = {v["name"]: v["rows"] for v in info["views"]}
    every = ("hsc_forced", "hsc_forced_bands", "photometry_flags", "quality_flags")
    every += ("quality_passed", "deduplicated", "ml_objects", "split_summary", "cutouts")
    for name in every:
        n = wh.query(f"SELECT count(*) AS n FROM {name}").column(0)[0].as_py()
        assert rows[name] == n, name
    assert info["views"][[v["name"] for v in info["views"]].index("galaxy_zoo")]["unavailable"]
    q = info["quality"]
    flags = wh.query(
        "SELECT count(*) FILTER (WHERE NOT no_pixelflags_bad) AS bad, "
        "count(*) FILTER (WHERE passes_all) AS ok FROM quality_flags"
    ).to_pylist()[0]
    assert {r["rule"]: r["fails"] for r in q["rules"]}["no_pixelflags_bad"] == flags["bad"]
    assert q["passes_all"] == flags["ok"]
    outcomes = {o["outcome"]: o["n"] for o in info["dedup"]["outcomes"]}
    kept = wh.query("SELECT count(*) FROM deduplicated WHERE kept").column(0)[0].as_py()
    assert outcomes["kept"] == kept
    splits = {s["split"]: s["n_objects"] for s in info["splits"]["splits"]}
    assert sum(splits.values()) == rows["ml_objects"] and set(splits) == {
        "train",
        "validation",
        "test",
    }
    z = info["redshift"]
    assert {k: sum(v) for k, v in z["counts"].items()} == splits  # every object in one bin
    assert len(z["edges"]) == len(z["counts"]["train"]) + 1
    assert any("simulated" in s for s in info["simulated"])  # the demo says what it is


def test_sql_pages_and_exact_ids(get, demo_root):
    wh = Warehouse.open(demo_root)
    sql = "SELECT object_id, split FROM ml_objects ORDER BY object_id"
    ids = wh.query(sql).column("object_id").to_pylist()
    first = get("/api/sql", q=sql).json()
    assert [r["object_id"] for r in first["rows"]] == ids[:SQL_PAGE_ROWS]  # exact 64-bit ids
    assert first["more"] == (len(ids) > SQL_PAGE_ROWS) and first["offset"] == 0
    big = "SELECT range AS k FROM range(2500)"
    p1, p3 = get("/api/sql", q=big).json(), get("/api/sql", q=big, page=3).json()
    assert p1["more"] and [r["k"] for r in p1["rows"]] == list(range(1000))
    assert not p3["more"] and [r["k"] for r in p3["rows"]] == list(range(2000, 2500))
    units = {
        c["name"]: c["unit"]
        for c in get("/api/sql", q="SELECT ra, i_cmodel_mag FROM ml_objects LIMIT 1").json()[
            "columns"
        ]
    }
    assert units["i_cmodel_mag"] == "mag" and units["ra"] in ("deg", "degree")
    nan = get("/api/sql", q="SELECT 'nan'::DOUBLE AS x, NULL AS y").json()["rows"]
    assert nan == [{"x": "nan", "y": None}]  # strict JSON, as gwh sql --format json


@pytest.mark.parametrize(
    ("sql", "says"),
    [
        ("COPY ml_objects TO '/tmp/gwh-web-stolen.csv'", "COPY is not allowed"),
        ("ATTACH '/tmp/gwh-web-other.duckdb' AS other", "ATTACH is not allowed"),
        ("INSTALL httpfs", "INSTALL/LOAD is not allowed"),
        ("SET threads = 1", "SET/RESET/USE is not allowed"),
        ("SELECT * FROM read_text('/etc/passwd')", "/etc/passwd is outside the warehouse"),
        ("SELECT 1; SELECT 2", "2 statements given"),
        ("SELECT * FROM ml_object", "Did you mean ml_objects?"),
    ],
)
def test_sql_is_refused_as_gwh_sql_refuses_it(get, sql, says):
    reply = get("/api/sql", q=sql)
    assert reply.status == 400
    error = reply.json()["error"]
    assert says in error
    assert "Traceback" not in error


def test_copy_wrote_nothing(get, tmp_path):
    target = tmp_path / "stolen.csv"
    reply = get("/api/sql", q=f"COPY (SELECT 1) TO '{target}'")
    assert reply.status == 400 and not target.exists()


def test_object_json(get, demo_root):
    wh = Warehouse.open(demo_root)
    oid = (
        wh.query(
            "SELECT object_id FROM ml_objects WHERE object_id IN (SELECT object_id FROM cutouts) "
            "ORDER BY object_id LIMIT 1"
        )
        .column(0)[0]
        .as_py()
    )
    info = get(f"/api/object/{oid}").json()
    assert (
        info["object_id"] == oid
        and info["in_ml_objects"]
        and info["split"]
        in (
            "train",
            "validation",
            "test",
        )
    )
    cols = {c["name"]: c for c in info["columns"]}
    assert cols["object_id"]["value"] == oid and cols["i_cmodel_mag"]["unit"] == "mag"
    cand = info["rules"]["candidates"]
    assert any(c["passes_all"] for c in cand)  # it is in ml_objects: one candidate passes all
    assert info["dedup"]["kept"] is True
    assert info["cutouts"]["bands"] == ["g", "r", "i", "z", "y"] and info["cutouts"]["simulated"]
    assert info["morphology"]["fields"]


def test_a_failing_object_says_which_rule_and_band(get, demo_root):
    wh = Warehouse.open(demo_root)
    row = wh.query(
        "SELECT f.object_id, f.g_pixelflags_bad, f.r_pixelflags_bad, f.i_pixelflags_bad, "
        "f.z_pixelflags_bad, f.y_pixelflags_bad FROM hsc_forced f JOIN quality_flags q "
        "USING (object_id) WHERE NOT q.no_pixelflags_bad ORDER BY 1 LIMIT 1"
    ).to_pylist()[0]
    info = get(f"/api/object/{row['object_id']}").json()
    assert not info["in_ml_objects"]
    check = next(
        k for k in info["rules"]["candidates"][0]["checks"] if k["rule"] == "no_pixelflags_bad"
    )
    assert check["passes"] is False
    expected = [b for b in "grizy" if row[f"{b}_pixelflags_bad"] is not False]
    assert check["bands_failing"] == expected
    assert check["values"][f"{expected[0]}_pixelflags_bad"] in (True, None)


def test_unknown_things_are_404_with_one_line(get):
    for path in ("/api/object/12345", "/api/release/v9", "/api/object/abc"):
        reply = get(path)
        assert reply.status == 404, path
        assert "Traceback" not in reply.text and reply.json()["error"]


def test_gallery_json_pages_and_filters(get, demo_root):
    wh = Warehouse.open(demo_root)
    test_ids = (
        wh.query(
            "SELECT object_id FROM ml_objects WHERE split = 'test' AND object_id IN "
            "(SELECT object_id FROM cutouts) ORDER BY specz_redshift, object_id"
        )
        .column(0)
        .to_pylist()
    )
    g = get("/api/gallery", split="test", order="specz_redshift", per_page=2).json()
    assert g["total"] == len(test_ids) and g["pages"] == -(-len(test_ids) // 2)
    assert [o["object_id"] for o in g["objects"]] == test_ids[:2]
    last = get("/api/gallery", split="test", order="specz_redshift", per_page=2, page=g["pages"])
    assert [o["object_id"] for o in last.json()["objects"]] == test_ids[(g["pages"] - 1) * 2 :]
    bad = get("/api/gallery", view="cutouts", where="simulated = false").json()
    assert sorted(o["object_id"] for o in bad["objects"]) == [-2, -1]  # the real COSMOS cutouts
    refused = get("/api/gallery", where="1=1); DROP VIEW ml_objects; SELECT (1")
    assert refused.status == 400 and "syntax error" in refused.json()["error"]
    assert get("/api/sql", q="SELECT count(*) FROM ml_objects").status == 200  # still there
    assert get("/api/gallery", view="nope").status == 404
    typo = get("/api/gallery", split="tset")  # was 200 with no objects, as if none had images
    assert typo.status == 400
    assert typo.json()["error"] == "split must be one of train, validation, test, got 'tset'"
    assert get("/plot/sky.png", split="tset").status == 400


def test_releases_json(get):
    names = [r["name"] for r in get("/api/releases").json()]
    assert names == ["v1", "v2"]
    v2 = get("/api/release/v2").json()
    assert v2["verified"] and v2["problems"] == [] and v2["previous"] == "v1"
    forced = v2["diff"]["tables"]["hsc_forced"]
    assert forced["rows_to"] - forced["rows_from"] == forced["added"] - forced["removed"]
    assert forced["added"] + forced["changed"] > 0
    assert get("/api/release/v1").json()["diff"] is None


def test_a_dropped_duplicate_names_the_candidate_kept_instead(get, demo_root):
    wh = Warehouse.open(demo_root)
    dropped = wh.query(
        "SELECT object_id, specz_name, duplicate_rule FROM deduplicated WHERE NOT kept "
        "AND duplicate_rule = 'same_specz_name' ORDER BY object_id LIMIT 1"
    ).to_pylist()
    assert dropped, "the demo has a same_specz_name duplicate"
    d = dropped[0]
    info = get(f"/api/object/{d['object_id']}").json()
    assert info["dedup"]["kept"] is False and info["dedup"]["status"].startswith("dropped: ")
    assert "same spec-z entry was closer" in info["dedup"]["status"]
    winners = [
        c for c in info["dedup"]["competitors"] if c["specz_name"] == d["specz_name"] and c["kept"]
    ]
    assert len(winners) == 1 and winners[0]["object_id"] != d["object_id"]


def test_gallery_marks_simulated_cutouts(get):
    objects = get("/api/gallery", view="cutouts", per_page=500).json()["objects"]
    marks = {o["object_id"]: o["simulated"] for o in objects}
    assert marks[-1] is False and marks[-2] is False  # the real COSMOS cutouts
    assert sum(marks.values()) == len(marks) - 2  # every demo galaxy is simulated


def test_a_release_is_served_as_it_was(demo_root):
    wh = Warehouse.open(demo_root)
    running = start(open_site(demo_root, release="v1"))
    try:
        v1 = fetch(running.url, "/api/overview").json()
        rows = {v["name"]: v["rows"] for v in v1["views"]}
        live = wh.query("SELECT count(*) FROM hsc_forced").column(0)[0].as_py()
        assert v1["release"] == "v1" and rows["hsc_forced"] == live - 60  # before the 60 more
        oid = wh.query("SELECT object_id FROM cutouts WHERE object_id > 0 LIMIT 1").column(0)
        oid = oid[0].as_py()
        assert fetch(running.url, f"/object/{oid}").status == 200
        png = fetch(running.url, f"/cutout/{oid}/i.png")
        assert png.status == 200 and png.body[:4] == b"\x89PNG"
        assert [r["name"] for r in fetch(running.url, "/api/releases").json()] == ["v1", "v2"]
    finally:
        running.stop()


def test_bad_parameters_are_400_with_one_line(get):
    """A malformed query parameter is a bad request (400), not a missing thing (404), and a page
    far past the end is an ordinary empty page or a one-line 400, never a DuckDB cast error."""
    for path, params in (
        ("/api/sql", {"q": "SELECT 1", "page": "-1"}),
        ("/api/sql", {"q": "SELECT 1", "page": "abc"}),
        ("/api/sql", {"q": ""}),
        ("/api/gallery", {"per_page": "-5"}),
        ("/api/gallery", {"per_page": "abc"}),
        ("/api/gallery", {"order": "no_such_column"}),
        ("/api/gallery", {"page": "99999999999999999999"}),
    ):
        reply = get(path, **params)
        assert reply.status == 400, (path, params, reply.text)
        error = reply.json()["error"]
        assert "\n" not in error and "Conversion Error" not in error, error
