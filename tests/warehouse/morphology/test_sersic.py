"""The Sersic fit of warehouse.morphology.sersic against scipy's least_squares on the same
objective, written out here independently (pixel-integrated model, weighted residuals)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import least_squares
from scipy.special import gammaincinv

from warehouse.morphology.sersic import _solve, fit_sersic, sersic_profile

SIGMA = 0.02
SIZE = 71


def rendered(n, r_e, q, theta, x0, y0, i_e=1.0, seed=0):
    """Elliptical Sersic image averaged over 7x7 sub-pixels, plus Gaussian noise (SIMULATED)."""
    o = (np.arange(7) + 0.5) / 7 - 0.5
    yy, xx = np.mgrid[:SIZE, :SIZE].astype(float)
    c, s = math.cos(theta), math.sin(theta)
    img = np.zeros((SIZE, SIZE))
    for oy in o:
        for ox in o:
            u = (xx + ox - x0) * c + (yy + oy - y0) * s
            v = -(xx + ox - x0) * s + (yy + oy - y0) * c
            img += sersic_profile(np.sqrt(u * u + (v / q) ** 2), i_e, r_e, n)
    img /= len(o) ** 2
    return img + np.random.default_rng(seed).normal(0.0, SIGMA, img.shape)


def reference_n(data, sigma, valid, x, y, q, theta, r_fit, start):
    """n minimising sum(((pixel mean of the model) - data) / sigma)^2 over the pixels within
    r_fit (elliptical), sub-sampled 11x11 within 2 px of the centre, 3x3 within 6 px."""
    c, s = math.cos(theta), math.sin(theta)
    yy, xx = np.nonzero(valid)
    dx, dy = xx - x, yy - y
    keep = np.sqrt((dx * c + dy * s) ** 2 + ((-dx * s + dy * c) / q) ** 2) <= r_fit
    dx, dy, obs, err = dx[keep], dy[keep], data[yy[keep], xx[keep]], sigma[yy[keep], xx[keep]]
    rc = np.hypot(dx, dy)
    samples = []
    for m, pick in ((1, rc > 6), (3, (rc > 2) & (rc <= 6)), (11, rc <= 2)):
        o = (np.arange(m) + 0.5) / m - 0.5
        ox, oy = (g.ravel() for g in np.meshgrid(o, o))
        sx, sy = dx[pick, None] + ox, dy[pick, None] + oy
        samples.append((pick, np.sqrt((sx * c + sy * s) ** 2 + ((-sx * s + sy * c) / q) ** 2)))

    def residuals(p):
        log_ie, log_re, n = p
        b = gammaincinv(2 * n, 0.5)
        model = np.empty(obs.size)
        for pick, r in samples:
            model[pick] = (
                np.exp(log_ie) * np.exp(-b * ((r / np.exp(log_re)) ** (1 / n) - 1))
            ).mean(axis=1)
        return (model - obs) / err

    res = least_squares(residuals, start, ftol=1e-14, xtol=1e-14, gtol=1e-14, max_nfev=2000)
    return float(res.x[2])


@pytest.mark.parametrize(
    ("n", "r_e", "q", "theta"),
    [(1.0, 5.0, 0.6, 0.5), (4.0, 4.0, 0.8, -1.0), (2.5, 3.0, 0.45, 1.2), (0.6, 6.0, 0.9, 0.0)],
)
def test_fit_reaches_the_least_squares_minimum(n, r_e, q, theta):
    x0, y0 = 35.3, 34.8
    data = rendered(n, r_e, q, theta, x0, y0, seed=int(10 * n))
    sigma = np.full(data.shape, SIGMA)
    valid = np.ones(data.shape, bool)
    valid[10:14, 50:60] = False  # pixels left out must stay out
    data[10:14, 50:60] = 1e6
    r_fit = 4.0 * r_e
    got = fit_sersic(data, sigma, valid, x0, y0, q, theta, r_fit=r_fit, r_guess=0.7 * r_e)
    want = reference_n(data, sigma, valid, x0, y0, q, theta, r_fit, [0.0, math.log(r_e), n])
    assert got == pytest.approx(want, abs=1e-5)
    assert got == pytest.approx(n, abs=0.15 * n)  # and it is the right galaxy


def test_weights_matter():
    x0, y0, q, theta = 35.0, 35.0, 0.7, 0.3
    data = rendered(1.5, 4.0, q, theta, x0, y0, seed=3)
    valid = np.ones(data.shape, bool)
    flat = fit_sersic(data, np.full(data.shape, SIGMA), valid, x0, y0, q, theta, 16.0, 3.0)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    sigma = SIGMA * (1.0 + 5.0 * (np.hypot(xx - x0, yy - y0) < 3))  # the core down-weighted
    weighted = fit_sersic(data, sigma, valid, x0, y0, q, theta, 16.0, 3.0)
    ref = reference_n(data, sigma, valid, x0, y0, q, theta, 16.0, [0.0, math.log(4.0), 1.5])
    assert weighted == pytest.approx(ref, abs=1e-5)
    assert abs(weighted - flat) > 1e-3


def test_too_few_pixels_and_bounds():
    data = rendered(1.0, 3.0, 0.8, 0.0, 35.0, 35.0)
    sigma = np.full(data.shape, SIGMA)
    valid = np.zeros(data.shape, bool)
    valid[35, 30:38] = True
    with pytest.raises(ValueError, match="too few pixels"):
        fit_sersic(data, sigma, valid, 35.0, 35.0, 0.8, 0.0, 10.0, 3.0)
    # a flat-topped disc runs into n = 0.2
    yy, xx = np.mgrid[:SIZE, :SIZE]
    disc = np.where(np.hypot(xx - 35, yy - 35) < 8, 1.0, 0.0) + data * 0
    with pytest.raises(ValueError, match="bound n=0.2"):
        fit_sersic(disc, sigma, np.ones(data.shape, bool), 35.0, 35.0, 1.0, 0.0, 12.0, 5.0)


def test_small_solver_matches_numpy():
    rng = np.random.default_rng(7)
    for k in (1, 2, 3):
        for _ in range(20):
            m = rng.normal(size=(k + 4, k))
            a = m.T @ m
            b = rng.normal(size=k)
            got = _solve(a.tolist(), b.tolist())
            assert got is not None
            np.testing.assert_allclose(got, np.linalg.solve(a, b), rtol=1e-9, atol=1e-12)
    assert _solve([[1.0, 2.0, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, 1.0]], [1.0, 1.0, 1.0]) is None
    assert _solve([[0.0]], [1.0]) is None
