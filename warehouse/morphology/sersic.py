"""The Sersic profile and the fixed-geometry Sersic fit of :func:`measure_band`.

:func:`fit_sersic` fits I(r) = I_e exp(-b_n ((r / R_e)^(1/n) - 1)) to the pixels within
``r_fit`` (elliptical radius) of the central galaxy, centre, axis ratio and angle fixed, by
weighted least squares in (ln I_e, ln R_e, n). The model is integrated over each pixel: 11x11
sub-samples within 2 px of the centre, 3x3 to 6 px, pixel centres beyond.

The minimisation is a small Levenberg-Marquardt loop on the 3x3 normal equations with the
analytic Jacobian and box bounds (a parameter on a bound that the gradient pushes outwards is
held there; a step leaving the box is clipped to it). It starts from the best I_e for the first
guesses of R_e and n = 2 (the model is linear in I_e). It ends when the undamped Gauss-Newton
step is smaller than 1e-3 in every parameter and promises less than 1e-7 of the cost (that
step is then taken without evaluating it: the quadratic model holds so close to the minimum),
or when a step lowers the cost by less than 1e-9 of it. With three parameters and a few
hundred pixels, the generic ``scipy.optimize.least_squares`` spends most of its time in its
own bookkeeping; this loop gets closer to its minimum (within 1e-4 in n but for flat fits near
the n = 10 bound; ~1e-7 typically: the tests compare with ``least_squares`` run to 1e-14)
several times faster.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import gammaincinv

__all__ = ["fit_sersic", "sersic_profile"]

N_BOUNDS = (0.2, 10.0)
"""Range of the Sersic index; a fit that ends on either bound is reported as a failure."""

_MAX_ITERATIONS = 200
_FTOL = 1e-9  # relative decrease of the cost below which the fit has converged
_LAST_STEP = 1e-7  # a Newton step promising a smaller relative decrease, and
_LAST_STEP_SIZE = 1e-3  # no larger than this in any parameter, is taken unchecked and ends it
_XTOL = 1e-10  # step size (in the parameters) below which the fit has converged


def sersic_profile(r: np.ndarray, i_e: float, r_e: float, n: float) -> np.ndarray:
    """Sersic surface brightness I(r) = I_e exp(-b_n ((r / R_e)^(1/n) - 1)).

    ``b_n`` is exact (``gammaincinv(2n, 0.5)``), so R_e encloses half the light.

    Examples
    --------
    >>> float(sersic_profile(np.array(2.0), 3.0, 2.0, 1.0))
    3.0
    """
    b_n = gammaincinv(2.0 * n, 0.5)
    return i_e * np.exp(-b_n * (np.power(np.asarray(r, float) / r_e, 1.0 / n) - 1.0))


def elliptical_radius(dx, dy, q: float, theta: float) -> np.ndarray:
    """Semi-major-axis radius of offsets (dx, dy) on ellipses of axis ratio q, angle theta."""
    c, s = math.cos(theta), math.sin(theta)
    u = dx * c + dy * s
    v = -dx * s + dy * c
    return np.sqrt(u * u + (v / q) ** 2)


def _subpixel_grid(m: int) -> tuple[np.ndarray, np.ndarray]:
    o = (np.arange(m) + 0.5) / m - 0.5
    ox, oy = np.meshgrid(o, o)
    return ox.ravel(), oy.ravel()


# Sub-pixel sampling by distance from the centre: (upper distance, samples per side).
_SAMPLING = ((2.0, 11), (6.0, 3))
_GRIDS = {m: _subpixel_grid(m) for _, m in _SAMPLING}


class _Model:
    """Pixel-integrated Sersic model of the selected pixels, grouped by sub-sampling.

    The sub-sample radii are stored flat, pixel after pixel: first the pixels sampled at their
    centre, then the 3x3 ones, then the 11x11 ones; ``order`` maps this order to the input's.
    """

    def __init__(
        self, dx: np.ndarray, dy: np.ndarray, r_centre: np.ndarray, q: float, theta: float
    ) -> None:
        rc = np.hypot(dx, dy)
        (inner, m_inner), (middle, m_middle) = _SAMPLING
        group = (rc <= middle).astype(np.intp) + (rc <= inner)  # 0: centre, 1: 3x3, 2: 11x11
        self.order = np.argsort(group, kind="stable")
        counts = np.bincount(group, minlength=3)
        radii = [r_centre[self.order[: counts[0]]]]
        offset = counts[0]
        for k, m in ((1, m_middle), (2, m_inner)):
            idx = self.order[offset : offset + counts[k]]
            offset += counts[k]
            ox, oy = _GRIDS[m]
            radii.append(
                elliptical_radius(dx[idx, None] + ox, dy[idx, None] + oy, q, theta).ravel()
            )
        sizes = np.repeat([1, m_middle**2, m_inner**2], counts)
        self.starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        self.inv_counts = 1.0 / sizes
        # (first pixel, end pixel, first sample, end sample, samples per pixel) per sub-sampling
        self.blocks = []
        pix = sample = int(counts[0])
        for k, m in ((1, m_middle), (2, m_inner)):
            n_k = int(counts[k])
            self.blocks.append((pix, pix + n_k, sample, sample + n_k * m * m, np.ones(m * m)))
            pix, sample = pix + n_k, sample + n_k * m * m
        self.r_all = np.concatenate(radii)
        self.log_r = np.log(np.maximum(self.r_all, 1e-6))

    def pixel_mean(self, v: np.ndarray) -> np.ndarray:
        """Mean over each pixel's sub-samples (last axis), in the model's pixel order."""
        return np.add.reduceat(v, self.starts, axis=-1) * self.inv_counts

    def pixel_sums(self, v: np.ndarray, out: np.ndarray) -> None:
        """Sums over each pixel's sub-samples of the rows of ``v`` (rows, samples) into ``out``
        (rows, pixels): a copy for the pixels sampled once, a product with ones for the rest."""
        n_centre = self.blocks[0][0]
        out[:, :n_centre] = v[:, :n_centre]
        for p0, p1, s0, s1, ones in self.blocks:
            np.matmul(v[:, s0:s1].reshape(v.shape[0], p1 - p0, ones.size), ones, out=out[:, p0:p1])


def _solve(a: list[list[float]], b: list[float]) -> list[float] | None:
    """Solution of a x = b for a small symmetric positive definite ``a`` (Cholesky); None if
    ``a`` is not positive definite to working precision."""
    if len(b) == 3:  # the usual case, written out
        (a00, a01, a02), (_, a11, a12), (_, _, a22) = a
        if not a00 > 0.0:
            return None
        l00 = math.sqrt(a00)
        l10, l20 = a01 / l00, a02 / l00
        d1 = a11 - l10 * l10
        if not d1 > 0.0:
            return None
        l11 = math.sqrt(d1)
        l21 = (a12 - l20 * l10) / l11
        d2 = a22 - l20 * l20 - l21 * l21
        if not d2 > 0.0:
            return None
        l22 = math.sqrt(d2)
        z0 = b[0] / l00
        z1 = (b[1] - l10 * z0) / l11
        z2 = (b[2] - l20 * z0 - l21 * z1) / l22
        x2 = z2 / l22
        x1 = (z1 - l21 * x2) / l11
        return [(z0 - l10 * x1 - l20 * x2) / l00, x1, x2]
    k = len(b)
    low = [[0.0] * k for _ in range(k)]
    for i in range(k):
        for j in range(i + 1):
            acc = a[i][j] - sum(low[i][m] * low[j][m] for m in range(j))
            if i == j:
                if not acc > 0.0:
                    return None
                low[i][i] = math.sqrt(acc)
            else:
                low[i][j] = acc / low[j][j]
    z = [0.0] * k
    for i in range(k):
        z[i] = (b[i] - sum(low[i][m] * z[m] for m in range(i))) / low[i][i]
    x = [0.0] * k
    for i in range(k - 1, -1, -1):
        x[i] = (z[i] - sum(low[m][i] * x[m] for m in range(i + 1, k))) / low[i][i]
    return x


def _rescale(rows: np.ndarray, scale: float, obs_w: np.ndarray) -> None:
    """Multiply the model (and its derivatives) in ``rows`` by ``scale``; update residuals."""
    rows[:3] *= scale
    np.subtract(rows[0], obs_w, out=rows[3])


def fit_sersic(
    data: np.ndarray,
    sigma: np.ndarray,
    valid: np.ndarray,
    x: float,
    y: float,
    q: float,
    theta: float,
    r_fit: float,
    r_guess: float,
) -> float:
    """Sersic index of the fixed-geometry fit (see the module docstring).

    Parameters
    ----------
    data, sigma : numpy.ndarray
        Background-subtracted image and its per-pixel error.
    valid : numpy.ndarray
        Boolean map of the pixels that may be fitted.
    x, y, q, theta : float
        Centre (0-based pixels), axis ratio and angle (radians) of the profile.
    r_fit : float
        Elliptical radius (pixels) of the fitted region.
    r_guess : float
        First guess of R_e (pixels).

    Returns
    -------
    float

    Raises
    ------
    ValueError
        Too few pixels, no convergence, or a fit that ends on a bound of n or R_e.
    """
    h, w = data.shape
    x0, x1 = max(int(math.floor(x - r_fit)), 0), min(int(math.ceil(x + r_fit)) + 1, w)
    y0, y1 = max(int(math.floor(y - r_fit)), 0), min(int(math.ceil(y + r_fit)) + 1, h)
    dx = np.arange(x0, x1) - x
    dy = np.arange(y0, y1) - y
    r_ell = elliptical_radius(dx, dy[:, None], q, theta)  # of the window's pixel centres
    with np.errstate(divide="ignore"):
        inv_sigma = 1.0 / sigma[y0:y1, x0:x1].astype(np.float64)
    sel = valid[y0:y1, x0:x1] & (r_ell <= r_fit)
    sel &= np.isfinite(inv_sigma) & (inv_sigma > 0)
    iy, ix = np.nonzero(sel)
    if iy.size < 10:
        raise ValueError("too few pixels for a Sersic fit")
    model = _Model(dx[ix], dy[iy], r_ell[iy, ix], q, theta)
    iy, ix = iy[model.order], ix[model.order]
    wgt = inv_sigma[iy, ix]
    obs_w = data[y0:y1, x0:x1][iy, ix] * wgt
    w_mean = wgt * model.inv_counts  # weighted pixel mean = pixel sum * w_mean
    log_r = model.log_r

    def evaluate(p: list[float]) -> np.ndarray:
        """Rows 0-2: d(weighted model)/d(ln I_e, ln R_e, n); row 3: weighted residuals."""
        log_ie, log_re, n = p
        h_ = 1e-5 * max(n, 1.0)
        two_n = np.array([2.0 * n, 2.0 * (n + h_), 2.0 * (n - h_)])
        b_n, b_up, b_down = gammaincinv(two_n, 0.5).tolist()
        db_dn = (b_up - b_down) / (2.0 * h_)
        log_x = log_r - log_re
        xn = log_x / n
        np.exp(xn, out=xn)  # (r / R_e) ** (1 / n)
        terms = np.empty((3, xn.size))
        prof, d_re, d_n = terms
        np.multiply(xn, -b_n, out=prof)
        prof += log_ie + b_n
        np.exp(prof, out=prof)  # I_e exp(-b_n (xn - 1))
        np.multiply(prof, xn, out=d_re)  # d prof / d ln R_e, up to the factor b_n / n
        # d prof / d n = prof (xn (b_n ln(r / R_e) / n^2 - db_n/dn) + db_n/dn)
        np.multiply(log_x, b_n / n**2, out=d_n)
        d_n -= db_dn
        d_n *= xn
        d_n += db_dn
        d_n *= prof
        out = np.empty((4, w_mean.size))
        model.pixel_sums(terms, out[:3])
        out[:3] *= w_mean
        out[1] *= b_n / n
        np.subtract(out[0], obs_w, out=out[3])
        return out

    n_lo, n_hi = N_BOUNDS
    r_e0 = max(r_guess, 0.5)
    p = [0.0, math.log(r_e0), 2.0]
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        rows = evaluate(p)
        # the model is linear in I_e: start from the best I_e for the first R_e and n
        scale = float(rows[0] @ obs_w) / float(rows[0] @ rows[0])
        if np.isfinite(scale) and scale > 0:
            p[0] = math.log(scale)
            _rescale(rows, scale, obs_w)
        else:  # no positive scale fits (a negative galaxy?): the surface brightness near R_e
            near = np.abs(model.pixel_mean(model.r_all) - r_e0) < 0.5 + 0.1 * r_e0
            obs = obs_w / wgt
            i_e0 = float(np.median(obs[near])) if near.any() else float(obs.max()) / 10.0
            if not i_e0 > 0:
                i_e0 = max(float(obs.max()) / 10.0, 1e-30)
            p[0] = math.log(i_e0)
            rows = evaluate(p)
        lo = [p[0] - 30.0, math.log(0.05), n_lo]
        hi = [p[0] + 30.0, math.log(10.0 * r_fit), n_hi]
        mat = (rows @ rows.T).tolist()
        cost = mat[3][3]
        lam = 1e-3
        for _ in range(_MAX_ITERATIONS):
            if not math.isfinite(cost):
                break
            g = mat[3][:3]  # J^T r
            # a parameter on a bound that the gradient pushes outwards stays there
            free = [
                k
                for k in range(3)
                if not ((p[k] <= lo[k] and g[k] > 0) or (p[k] >= hi[k] and g[k] < 0))
            ]
            if not free:
                break
            a_free = [[mat[i][j] for j in free] for i in free]
            g_free = [g[k] for k in free]
            # the undamped (Gauss-Newton) step: if it is small and promises almost nothing,
            # the quadratic model holds there: take it and stop (n is then off by ~step^2)
            newton = _solve(a_free, [-v for v in g_free])
            if newton is not None:
                promised = -sum(gk * sk for gk, sk in zip(g_free, newton, strict=True))
                last = list(p)
                for k, v in zip(free, newton, strict=True):
                    last[k] += v
                if (
                    0.0 <= promised <= _LAST_STEP * cost
                    and max(abs(v) for v in newton) <= _LAST_STEP_SIZE
                    and all(lo[k] <= last[k] <= hi[k] for k in range(3))
                ):
                    p = last
                    break
            for i in range(len(free)):
                a_free[i][i] *= 1.0 + lam
            solved = _solve(a_free, [-v for v in g_free])
            if solved is None:
                lam *= 10.0
                continue
            step = [0.0, 0.0, 0.0]
            for k, v in zip(free, solved, strict=True):
                step[k] = v
            trial = [min(max(p[k] + step[k], lo[k]), hi[k]) for k in range(3)]
            moved = [trial[k] - p[k] for k in range(3)]
            rows_t = evaluate(trial)
            mat_t = (rows_t @ rows_t.T).tolist()
            cost_t = mat_t[3][3]
            if math.isfinite(cost_t) and cost_t < cost:
                done = cost - cost_t <= _FTOL * cost or all(
                    abs(moved[k]) <= _XTOL * (abs(p[k]) + _XTOL) for k in range(3)
                )
                p, mat, cost = trial, mat_t, cost_t
                lam = max(lam / 10.0, 1e-12)
                if done:
                    break
            else:
                lam *= 10.0
                if lam > 1e12 or not any(moved):
                    break  # no step lowers the cost: a minimum (possibly on a bound)
        else:
            raise ValueError(f"Sersic fit did not converge in {_MAX_ITERATIONS} iterations")
    if not math.isfinite(cost):
        raise ValueError("Sersic fit did not converge (non-finite residuals)")
    n = float(p[2])
    if n - n_lo < 1e-3 or n_hi - n < 1e-3:
        raise ValueError(f"Sersic fit stopped at the bound n={n:.3g}")
    if p[1] - lo[1] < 1e-3 or hi[1] - p[1] < 1e-3:
        raise ValueError("Sersic fit stopped at a bound of the effective radius")
    return n
