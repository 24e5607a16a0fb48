"""A regression model of a federated round's utility, cheap enough to evaluate on every coalition.

In a round ``u(S) = f(w_t + sum_{i in S} a_i(S) delta_i)`` with the aggregation shares
``a_i(S) = p_i / sum_{j in S} p_j`` (``p`` the clients' weights, 0 outside S). A second-order
Taylor expansion of the metric ``f`` around ``w_t`` gives

    u(S) ~ u(empty) + sum_i g_i a_i(S) + sum_{i <= j} h_ij a_i(S) a_j(S)

(``g_i`` the metric's directional derivative along ``delta_i``, ``h_ij`` its curvature along
pairs), linear in ``n + n(n+1)/2`` unknowns. ``fit_surrogate`` fits it by ridge regression on
the coalitions evaluated so far (penalty on the second-order terms only) and picks the model
(``linear``: ``g`` only, ``diagonal``: ``g`` and ``h_ii``, ``quadratic``: all) and the penalty
with the smallest leave-one-out error, which least squares gives in closed form (PRESS). It is
the control variate of ``stratified.StratifiedCVSampler``: the surrogate's Shapley values are
computed exactly (every coalition, no utility call) and only the residual is sampled.

Coalitions are bitmasks: bit i set when player i is in.

Example:
    >>> masks = np.arange(1, 8)
    >>> shares = coalition_shares(masks, np.ones(3))
    >>> s = fit_surrogate(masks, shares @ np.array([3.0, 1.0, 2.0]), 0.0, np.ones(3))
    >>> s.predict(np.array([0, 1, 3])).round(6).tolist()
    [0.0, 3.0, 2.0]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KINDS = ("linear", "diagonal", "quadratic")
PENALTIES = (0.0, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)  # ridge grid for the second-order terms
_RCOND = 1e-12  # eigenvalues of a Gram matrix below this share of the largest count as 0
_CHUNK = 4096  # coalitions per prediction batch (bounds memory at n = 16)


def members(masks: np.ndarray, n: int) -> np.ndarray:
    """(m, n) 0/1 float: whether player i is in coalition ``masks[k]``."""
    return (np.asarray(masks, dtype=np.int64)[:, None] >> np.arange(n) & 1).astype(float)


def coalition_shares(masks: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(m, n) aggregation shares ``a_i(S)``; all 0 for a coalition of zero total weight."""
    x = members(masks, weights.size) * weights
    total = x.sum(axis=1, keepdims=True)
    return np.divide(x, total, out=np.zeros_like(x), where=total > 0)


def _second_order(shares: np.ndarray, kind: str) -> np.ndarray:
    """(m, k2) second-order features of ``kind`` (none for ``linear``) from (m, n) shares."""
    n = shares.shape[1]
    if kind == "linear":
        return np.zeros((shares.shape[0], 0))
    rows, cols = np.triu_indices(n) if kind == "quadratic" else (np.arange(n), np.arange(n))
    return shares[:, rows] * shares[:, cols]


def _basis(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Thin SVD ``x = U S V'`` without the directions of (numerically) zero singular value.

    From the eigenvectors of the small Gram matrix ``x'x`` (k x k) rather than a LAPACK SVD
    of the tall ``x``: one small eigenproblem, far cheaper when BLAS threads contend.
    """
    eigval, v = np.linalg.eigh(x.T @ x)
    keep = eigval > (eigval.max() if eigval.size else 0.0) * _RCOND
    sv = np.sqrt(eigval[keep])
    return (x @ v[:, keep]) / sv, sv, v[:, keep].T


def _ridge_path(
    shares: np.ndarray, second: np.ndarray, y: np.ndarray
) -> list[tuple[float, np.ndarray, float]]:
    """``(penalty, coef, loo)`` for every penalty of ``PENALTIES`` (just 0 without second-order
    features): ridge regression of ``y`` on ``[shares, second]`` with only ``second`` shrunk,
    ``coef`` (n + k2,) and ``loo`` the leave-one-out mean squared error (PRESS / m).

    By Frisch-Waugh: both are projected off the span of ``shares``, and one SVD of the
    projected ``second`` gives every penalty's fit and leverages. Truncated SVDs rather than
    normal equations because the quadratic features contain the linear ones
    (``sum_j a_i a_j = a_i``): the design is rank deficient.
    """
    u_lin, s_lin, vt_lin = _basis(shares)
    lev_lin = (u_lin**2).sum(axis=1)
    fit_lin = u_lin @ (u_lin.T @ y)

    def linear_coef(target: np.ndarray) -> np.ndarray:  # min-norm least squares on shares
        return vt_lin.T @ ((u_lin.T @ target) / s_lin)

    if second.shape[1] == 0:
        loo = (y - fit_lin) / np.clip(1.0 - lev_lin, 1e-6, None)
        return [(0.0, linear_coef(y), float(np.mean(loo**2)))]
    u, sv, vt = _basis(second - u_lin @ (u_lin.T @ second))
    coords = u.T @ (y - fit_lin)
    path = []
    for penalty in PENALTIES:
        gain = sv**2 / (sv**2 + penalty)
        beta = vt.T @ (coords * gain / sv)
        leverage = lev_lin + (u**2) @ gain
        loo = (y - fit_lin - u @ (coords * gain)) / np.clip(1.0 - leverage, 1e-6, None)
        coef = np.concatenate([linear_coef(y - second @ beta), beta])
        path.append((penalty, coef, float(np.mean(loo**2))))
    return path


@dataclass(frozen=True)
class Surrogate:
    """A fitted model ``u(S) ~ v_none + features(S) @ coef``.

    Attributes:
        kind: one of ``KINDS``.
        penalty: the chosen ridge penalty of the second-order terms.
        coef: (k,) coefficients.
        v_none: u(empty).
        weights: (n,) aggregation weights.
        loo_error: leave-one-out mean squared error on the data it was fitted to.
    """

    kind: str
    penalty: float
    coef: np.ndarray
    v_none: float
    weights: np.ndarray
    loo_error: float

    def predict(self, masks: np.ndarray) -> np.ndarray:
        """(m,) predicted utility of each coalition bitmask (exactly ``v_none`` for empty)."""
        masks = np.asarray(masks, dtype=np.int64)
        out = np.empty(masks.size)
        for start in range(0, masks.size, _CHUNK):
            chunk = masks[start : start + _CHUNK]
            shares = coalition_shares(chunk, self.weights)
            x = np.concatenate([shares, _second_order(shares, self.kind)], axis=1)
            out[start : start + _CHUNK] = self.v_none + x @ self.coef
        return out


def fit_surrogate(
    masks: np.ndarray, values: np.ndarray, v_none: float, weights: np.ndarray
) -> Surrogate:
    """The model and penalty (of ``KINDS`` x ``PENALTIES``) with the least leave-one-out error.

    Args:
        masks: (m,) evaluated coalitions (bitmasks); the empty one, if present, is skipped
            (the model is exact there).
        values: (m,) their utilities.
        v_none: u(empty).
        weights: (n,) aggregation weights p_i > 0 (equal weights when unknown).
    """
    masks, values = np.asarray(masks, dtype=np.int64), np.asarray(values, dtype=float)
    keep = masks != 0
    shares = coalition_shares(masks[keep], weights)
    y = values[keep] - v_none
    best: Surrogate | None = None
    for kind in KINDS:
        for penalty, coef, loo in _ridge_path(shares, _second_order(shares, kind), y):
            if best is None or loo < best.loo_error:
                best = Surrogate(kind, penalty, coef, float(v_none), weights, loo)
    assert best is not None
    return best
