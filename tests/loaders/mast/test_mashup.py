"""loaders/mast/mashup.py: MAST Mashup answers into Arrow with units, targets and boxes (no
network: coordinates parse locally, a box is cut here)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loaders.mast.mashup import Box, mashup_to_arrow, resolve_target, unit_of
from warehouse.errors import ArchiveError


def test_coordinates_parse_without_the_network():
    assert resolve_target("322.525 12.167", base_url="http://127.0.0.1:9") == (322.525, 12.167)
    ra, dec = resolve_target("21h30m00s +12d10m00s", base_url="http://127.0.0.1:9")
    assert (ra, dec) == pytest.approx((322.5, 12.1666667))


def test_mashup_to_arrow_types_and_nulls():
    page = {
        "fields": [
            {"name": "MatchID", "type": "int"},
            {"name": "A_F814W", "type": "float"},
            {"name": "TargetName", "type": "string"},
            {"name": "_selected_", "type": "boolean"},
        ],
        "data": [
            {"MatchID": 2**62 + 1, "A_F814W": None, "TargetName": "M-15", "_selected_": None},
            {"MatchID": 7, "A_F814W": 21.5, "TargetName": None, "_selected_": None},
        ],
    }
    table = mashup_to_arrow([page])
    assert table.column_names == ["MatchID", "A_F814W", "TargetName"]
    assert table.column("MatchID").to_pylist() == [2**62 + 1, 7]  # exact, never via float
    assert table.column("A_F814W").to_pylist() == [None, 21.5]
    with pytest.raises(ArchiveError, match="no 'fields'"):
        mashup_to_arrow([{"data": []}])


def test_units():
    assert unit_of("W3_F336W") == "mag" and unit_of("W3_F336W_Sigma") == "mag"
    assert unit_of("W3_F336W_N") == "" and unit_of("NumImages") == ""
    assert unit_of("KronRadius") == "arcsec"


# -- geometry --------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    ra=st.floats(0, 360, exclude_max=True),
    dec=st.floats(-85, 85),
    side=st.floats(0.01, 10),
    u=st.floats(-1, 1),
    v=st.floats(-1, 1),
)
def test_every_point_of_a_box_lies_in_its_cone(ra, dec, side, u, v):
    box = Box(ra, dec, side)
    lo, hi = box.dec_range
    d = (lo + hi) / 2 + v * (hi - lo) / 2
    r = ra + u * box.ra_half_width
    assert bool(box.contains(np.array([r % 360]), np.array([d]))[0])
    c1, c2 = math.radians(dec), math.radians(d)
    sep = math.degrees(
        math.acos(
            min(
                1.0,
                math.sin(c1) * math.sin(c2)
                + math.cos(c1) * math.cos(c2) * math.cos(math.radians(r - ra)),
            )
        )
    )
    assert sep <= box.cone_radius() + 1e-9


def test_a_box_wraps_at_ra_zero_and_reaches_the_pole():
    box = Box(359.9, 0.0, 1.0)
    inside = box.contains(np.array([0.3, 359.5, 1.0, 358.0]), np.array([0.0, 0.4, 0.0, 0.0]))
    assert inside.tolist() == [True, True, False, False]
    polar = Box(10.0, 89.8, 1.0)
    assert polar.ra_half_width == 180.0
    assert polar.contains(np.array([190.0]), np.array([89.7]))[0]
    with pytest.raises(ValueError, match="box side"):
        Box(0, 0, 0)
