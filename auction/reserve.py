"""Optimal reserve prices (Myerson 1981) for regular value distributions.

With i.i.d. values from a regular distribution F (increasing virtual value), the revenue-optimal
single-item auction is second price with reserve ``r*`` solving ``phi(r*) = seller_value``, where
``phi(v) = v - (1 - F(v)) / f(v)``. ``r*`` does not depend on the number of bidders.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from ._validation import AuctionError


class Distribution(Protocol):
    """Anything with scipy.stats-style ``sf`` and ``pdf`` methods (a frozen scipy distribution)."""

    def sf(self, x: float) -> float: ...

    def pdf(self, x: float) -> float: ...


def virtual_value(dist: Distribution, v: float | np.ndarray) -> np.ndarray:
    """Myerson's virtual value ``phi(v) = v - (1 - F(v)) / f(v)``.

    Example:
        >>> from scipy.stats import uniform
        >>> float(virtual_value(uniform(0, 1), 0.75))
        0.5
    """
    v = np.asarray(v, dtype=np.float64)
    return v - np.asarray(dist.sf(v)) / np.asarray(dist.pdf(v))


def myerson_reserve(
    dist: Distribution,
    seller_value: float = 0.0,
    *,
    support: tuple[float, float] | None = None,
    tol: float = 1e-10,
) -> float:
    """Optimal per-click reserve: the root of ``phi(r) = seller_value`` by bisection.

    Args:
        dist: value distribution with ``sf`` and ``pdf`` (e.g. ``scipy.stats.expon(scale=2)``);
            must be regular (virtual value increasing) on the support.
        seller_value: the seller's own value for the item (0 for an ad slot nobody else buys).
        support: (low, high) search interval; default ``dist.support()`` with an infinite upper
            end replaced by the ``1 - 1e-12`` quantile.
        tol: absolute tolerance on the reserve.

    Example:
        >>> from scipy.stats import uniform
        >>> round(myerson_reserve(uniform(0, 1)), 6)
        0.5
    """
    if support is None:
        if not hasattr(dist, "support"):
            raise AuctionError("myerson_reserve needs support=(low, high) for this distribution")
        lo, hi = (float(x) for x in dist.support())
        if not np.isfinite(hi):
            hi = float(dist.isf(1e-12))
    else:
        lo, hi = (float(x) for x in support)
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise AuctionError(f"support must be a finite interval low < high, got ({lo}, {hi})")

    def gap(v: float) -> float:
        return float(virtual_value(dist, v)) - seller_value

    # Evaluate just inside the interval: sf/pdf can be 0/0 at the end points.
    eps = (hi - lo) * 1e-12
    a, b = lo + eps, hi - eps
    if gap(a) >= 0:
        return lo
    if gap(b) < 0:
        raise AuctionError(
            "virtual value stays below seller_value on the support: no reserve sells; "
            "check that the distribution is regular and the support is right"
        )
    while b - a > tol:
        mid = 0.5 * (a + b)
        if gap(mid) < 0:
            a = mid
        else:
            b = mid
    return 0.5 * (a + b)
