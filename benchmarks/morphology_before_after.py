"""Morphology of another checkout (before) vs this one (after): values and speed, same inputs.

Both checkouts measure the same cutouts in separate processes pinned to the same core: the
SIMULATED galaxies of ``bench_morphology.py`` (``--n``, 127x127x5) and real HSC data: the COSMOS
cubes of ``tests/data/morphology`` (``hsc_cosmos.npz``; ``hsc_cosmos_35.npz`` with its variance
and mask; ``hsc_ra150.24071_dec2.06514.fits``) and 63x63 crops around every source of the
r-band coadd ``tests/data/cutouts/image.fits``. Prints, per Table 1 field, the largest absolute
and relative difference over every band measurement, the measurements whose NULL-ness differs,
and galaxies/s of both (best of ``--repeat`` alternating rounds, with and without the Sersic
fit, per second of wall-clock time and of CPU time: on a shared machine the second is the cost
per core; only the simulated galaxies are timed).

Usage::

    git worktree add /tmp/morph_base <commit>
    python benchmarks/morphology_before_after.py --base /tmp/morph_base --n 40
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from astropy.io import fits

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_morphology import BANDS, simulated_cutouts  # noqa: E402

from warehouse.morphology import MORPHOLOGY_FIELDS, detect_sources  # noqa: E402

DATA = ROOT / "tests" / "data" / "morphology"
HSC_BAD_BITS = 1 | 2 | 4 | 8 | 16 | 256  # BAD, SAT, INTRP, CR, EDGE, NO_DATA

# Run in a child process whose sys.path starts with the checkout under test.
_CHILD = r"""
import os, pickle, sys, time
sys.path.insert(0, sys.argv[1])
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {int(sys.argv[4])})
import numpy as np
from warehouse.morphology import DetectionConfig, measure_object
with open(sys.argv[2], "rb") as fh:
    cases = pickle.load(fh)
values = [
    measure_object(c["images"], c["bands"], variances=c.get("variances"), masks=c.get("masks"))
    for c in cases
]
timed = [c["images"] for c in cases if c["timed"]]
measure_object(timed[0], "grizy")  # warm-up
speed = {}
for label, cfg in (("fit", DetectionConfig()), ("no_fit", DetectionConfig(fit_sersic=False))):
    t0, c0 = time.perf_counter(), time.process_time()
    for cube in timed:
        measure_object(cube, "grizy", config=cfg)
    speed[label] = len(timed) / (time.perf_counter() - t0)
    speed[label + "_cpu"] = len(timed) / (time.process_time() - c0)
with open(sys.argv[3], "wb") as fh:
    pickle.dump({"values": values, "speed": speed}, fh)
"""


def cases(n: int) -> list[dict]:
    out = [{"images": cube, "bands": BANDS, "timed": True} for cube in simulated_cutouts(n)]
    real = np.load(DATA / "hsc_cosmos.npz")
    out.append({"images": real["images"], "bands": "".join(real["filters"]), "timed": False})
    real35 = np.load(DATA / "hsc_cosmos_35.npz")
    out.append(
        {
            "images": real35["images"],
            "variances": real35["variance"],
            "masks": (real35["mask"] & HSC_BAD_BITS) != 0,
            "bands": "".join(real35["filters"]),
            "timed": False,
        }
    )
    # the real HSC r-band coadd of tests/data/cutouts (180x179): 63x63 crops around each of its
    # detections, so every source of the field is a central galaxy once
    with fits.open(ROOT / "tests" / "data" / "cutouts" / "image.fits") as hdus:
        field = np.asarray(hdus["IMAGE"].data, dtype=np.float32)
    crops = []
    for obj in detect_sources(field).objects:
        x, y = round(float(obj["x"])), round(float(obj["y"]))
        if 31 <= x < field.shape[1] - 31 and 31 <= y < field.shape[0] - 31:
            crops.append(field[y - 31 : y + 32, x - 31 : x + 32])
    for crop in crops:
        out.append({"images": crop[None], "bands": "r", "timed": False})
    with fits.open(DATA / "hsc_ra150.24071_dec2.06514.fits") as hdus:
        cube = np.asarray(hdus[0].data, dtype=np.float32)
    out.append({"images": cube, "bands": "grizy", "timed": False})
    return out


def run(checkout: Path, inputs: Path, core: int) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".pkl", delete=False) as fh:
        out = Path(fh.name)
    try:
        subprocess.run(
            [sys.executable, "-c", _CHILD, str(checkout), str(inputs), str(out), str(core)],
            check=True,
        )
        with open(out, "rb") as fh:
            return pickle.load(fh)
    finally:
        out.unlink(missing_ok=True)


def compare(before: list[dict], after: list[dict], bands: list[str]) -> list[dict]:
    rows = []
    for field in MORPHOLOGY_FIELDS:
        abs_d, rel_d, null_diff, measured = 0.0, 0.0, 0, 0
        for b_obj, a_obj, obj_bands in zip(before, after, bands, strict=True):
            for band in obj_bands:
                old, new = b_obj[f"{band}_{field}"], a_obj[f"{band}_{field}"]
                if (old is None) != (new is None):
                    null_diff += 1
                    continue
                if old is None:
                    continue
                measured += 1
                d = abs(float(new) - float(old))
                abs_d = max(abs_d, d)
                if old != 0:
                    rel_d = max(rel_d, d / abs(float(old)))
        rows.append(
            {
                "field": field,
                "measured": measured,
                "max_abs": abs_d,
                "max_rel": rel_d,
                "null_differs": null_diff,
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, required=True, help="checkout measured as 'before'")
    parser.add_argument("--n", type=int, default=40, help="simulated galaxies (default 40)")
    parser.add_argument("--repeat", type=int, default=2, help="alternating timing rounds")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    core = min(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 0
    todo = cases(args.n)
    with tempfile.TemporaryDirectory() as tmp:
        inputs = Path(tmp) / "cases.pkl"
        with open(inputs, "wb") as fh:
            pickle.dump(todo, fh)
        results: dict[str, list[dict]] = {"before": [], "after": []}
        for _ in range(args.repeat):
            results["before"].append(run(args.base.resolve(), inputs, core))
            results["after"].append(run(ROOT, inputs, core))
    base_rev = subprocess.run(
        ["git", "-C", str(args.base), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    head_rev = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    n_real = sum(len(c["bands"]) for c in todo if not c["timed"])
    print(
        f"before = {args.base} ({base_rev}), after = {ROOT} ({head_rev} + working tree); "
        f"{args.n} SIMULATED galaxies x {len(BANDS)} bands + {n_real} real HSC band images"
    )
    rows = compare(
        results["before"][0]["values"], results["after"][0]["values"], [c["bands"] for c in todo]
    )
    print("| field | measured | max abs diff | max rel diff | NULL differs |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['field']} | {r['measured']} | {r['max_abs']:.3g} | {r['max_rel']:.3g} "
            f"| {r['null_differs']} |"
        )
    kinds = ("fit", "no_fit", "fit_cpu", "no_fit_cpu")
    speed = {
        side: {k: max(r["speed"][k] for r in results[side]) for k in kinds}
        for side in ("before", "after")
    }
    print(
        f"galaxies/s on one core (core {core}), best of {args.repeat} alternating rounds; "
        "per second of wall-clock time / of the process's CPU time:"
    )
    for k, label in (("fit", "full Table 1 (with Sersic fit)"), ("no_fit", "without the fit")):
        b, a = speed["before"][k], speed["after"][k]
        bc, ac = speed["before"][k + "_cpu"], speed["after"][k + "_cpu"]
        print(
            f"  {label:32s} before {b:6.1f} / {bc:6.1f}  after {a:6.1f} / {ac:6.1f}  "
            f"({a / b:.2f}x / {ac / bc:.2f}x)"
        )
    if args.json:
        args.json.write_text(json.dumps({"diff": rows, "speed": speed}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
