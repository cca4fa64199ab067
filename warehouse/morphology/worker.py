"""The part of ``gwh morphology measure`` that runs in worker processes.

Kept apart from :mod:`warehouse.morphology.table` so that a worker process imports only numpy,
pyarrow and the measuring modules of :mod:`warehouse.morphology` (not DuckDB, healpy or
astropy): each task gets its objects' stored cutout rows (bytes) and returns small dicts.
"""

from __future__ import annotations

import ctypes
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from warehouse.files import pid_alive
from warehouse.morphology.detect import DetectionConfig
from warehouse.morphology.fields import INT_FIELDS, MORPHOLOGY_FIELDS
from warehouse.morphology.measure import measure_band

PIXEL_COLUMNS = ("image", "variance", "mask", "height", "width", "zeropoint", "pixel_scale")
"""Cutout columns a measurement reads per band."""

PARENT_POLL_SECONDS = 0.2
"""How often a worker checks that the process that made its pool still runs."""

HSC_PIXEL_SCALE = 0.168  # used only to run the measurement when a band has no pixel scale
HSC_ZEROPOINT = 27.0


@dataclass(frozen=True)
class Job:
    """What every task of one run measures."""

    bands: tuple[str, ...]
    config: DetectionConfig
    bad_bits: int  # mask bits that make a pixel unusable (DEFAULT_BAD_MASK_BITS)


def _plane(blob: bytes, height: int, width: int, dtype: str) -> np.ndarray:
    arr = np.frombuffer(blob, dtype=dtype)
    if arr.size != height * width:
        raise ValueError(f"stored plane holds {arr.size} values, expected {height}x{width}")
    return arr.reshape(height, width)


def _null_band(reason: str) -> dict[str, Any]:
    out: dict[str, Any] = dict.fromkeys(MORPHOLOGY_FIELDS)
    out["reason"] = reason
    return out


def measure_band_row(
    row: dict[str, Any], band: str, config: DetectionConfig, bad_bits: int
) -> dict[str, Any]:
    """One band of a stored cutouts row: Table 1 fields and ``reason``; never raises."""

    def col(what: str) -> Any:
        return row.get(f"{band}_{what}")

    if col("image") is None:
        return _null_band(f"no {band} cutout")
    zp, scale = col("zeropoint"), col("pixel_scale")
    try:
        h, w = int(col("height")), int(col("width"))
        image = _plane(col("image"), h, w, "<f4")
        variance = None if col("variance") is None else _plane(col("variance"), h, w, "<f4")
        bad = None
        if col("mask") is not None:
            bad = (_plane(col("mask"), h, w, "<i4").astype(np.int64) & bad_bits) != 0
        res = measure_band(
            image,
            variance=variance,
            mask=bad,
            zeropoint=HSC_ZEROPOINT if zp is None else float(zp),
            pixel_scale=HSC_PIXEL_SCALE if scale is None else float(scale),
            config=config,
        )
    except Exception as exc:  # a damaged row must not stop the run: NULLs and the reason
        return _null_band(f"measurement failed: {type(exc).__name__}: {exc}")
    reasons = [res["reason"]] if res["reason"] else []
    if (zp is None or scale is None) and res["peak_surface_brightness"] is not None:
        res["peak_surface_brightness"] = None  # it would rest on an assumed calibration
        missing = "zeropoint (pixels are not calibrated flux)" if zp is None else "pixel scale"
        reasons.append(f"peak_surface_brightness: no {missing}")
    for name in MORPHOLOGY_FIELDS:
        value = res[name]
        if value is None:
            continue
        if name in INT_FIELDS:
            res[name] = int(value)
        elif not math.isfinite(float(value)):
            res[name] = None
            reasons.append(f"{name}: not finite")
        else:
            res[name] = float(value)
    res["reason"] = "; ".join(reasons) or None
    return res


def measure_stored_object(
    row: dict[str, Any],
    bands: Sequence[str],
    config: DetectionConfig | None = None,
    bad_bits: int = 0,
) -> dict[str, Any]:
    """Measure one object from its stored cutouts row (``{b}_image`` bytes, ``{b}_mask``, ...).

    Returns ``object_id`` and, per band, ``{b}_<field>`` and ``{b}_morph_reason``. Never raises
    for bad data: a band that cannot be measured is NULL with its reason. Mask pixels with any
    of ``bad_bits`` set, and NaN pixels, are left out of the measurement.
    """
    config = DetectionConfig() if config is None else config
    out: dict[str, Any] = {"object_id": int(row["object_id"])}
    for b in bands:
        res = measure_band_row(row, b, config, bad_bits)
        for name in MORPHOLOGY_FIELDS:
            out[f"{b}_{name}"] = res[name]
        out[f"{b}_morph_reason"] = res["reason"]
    return out


def measure_rows(rows: list[dict[str, Any]], job: Job) -> list[dict[str, Any]]:
    """Measure stored cutouts rows (object_id and the pixel columns of ``job.bands``)."""
    return [measure_stored_object(row, job.bands, job.config, job.bad_bits) for row in rows]


# --------------------------------------------------------------------------- orphaned workers


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, killed but not yet reaped, counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().rsplit(b")", 1)[1].split()[0]
        return state not in (b"Z", b"X")
    except FileNotFoundError:
        return False
    except OSError:  # no /proc (macOS): ask the kernel
        return pid_alive(pid)


def _die_with_parent() -> None:
    """Linux: the kernel sends SIGKILL to this process when its parent (the forkserver) ends."""
    if not sys.platform.startswith("linux"):
        return
    pr_set_pdeathsig = 1
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # no prctl: the watchdog thread alone
        return


def watch_parent(owner_pid: int, interval: float = PARENT_POLL_SECONDS) -> None:
    """Worker initializer: end this worker when ``owner_pid`` (the process that made the pool)
    or the worker's own parent ends.

    A pool's workers block on its task queue, whose write end every worker holds too, so they
    never see their owner die; and the forkserver they were forked from waits for them. Killing
    ``gwh morphology measure`` (kill -9) would leave both running forever. A daemon thread polls
    the owner every ``interval`` seconds and exits the worker at once (``os._exit``: nothing of
    the owner's is left to flush); on Linux the kernel also kills the worker when the forkserver
    ends (``PR_SET_PDEATHSIG``).
    """
    _die_with_parent()
    parent = os.getppid()

    def watch() -> None:
        while True:
            if not _alive(owner_pid) or os.getppid() != parent:
                os._exit(1)
            time.sleep(interval)

    threading.Thread(target=watch, name="gwh-parent-watch", daemon=True).start()
