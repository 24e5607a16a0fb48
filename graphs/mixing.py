"""Mixing matrices of gossip and their spectral theory.

Metropolis–Hastings weights ``W_ij = 1 / (1 + max(d_i, d_j))`` on each edge and
``W_ii = 1 - sum_j W_ij`` give a symmetric, doubly stochastic matrix on any undirected graph,
using only what two neighbours know (their degrees). Synchronous gossip ``x <- W x`` then
contracts the distance to the mean by at most the second-largest eigenvalue modulus (SLEM)
per round, so about ``log(1 / tol) / log(1 / SLEM)`` rounds reach relative error ``tol``.

Example:
    >>> import networkx as nx
    >>> round(slem(metropolis_weights(nx.complete_graph(4))), 12)
    0.0
"""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
from scipy import sparse
from scipy.sparse.linalg import eigsh

from ._errors import GraphError
from .topology import edge_arrays, metropolis_csr

# Above this many nodes, eigenvalues come from sparse Lanczos instead of a dense solve.
_DENSE_LIMIT = 2000


def metropolis_matrix(G: nx.Graph) -> sparse.csr_matrix:
    """Sparse (n, n) Metropolis–Hastings weights, rows/cols in ``list(G)`` order."""
    if G.is_directed():
        raise GraphError("Metropolis weights need an undirected graph; use push_sum on digraphs")
    nodes, src, dst = edge_arrays(G)
    return metropolis_csr(len(nodes), src, dst, np.dtype(np.float64))


def metropolis_weights(G: nx.Graph) -> np.ndarray:
    """Dense (n, n) Metropolis–Hastings weights: symmetric, doubly stochastic, ``list(G)`` order.

    Example:
        >>> import networkx as nx
        >>> W = metropolis_weights(nx.path_graph(3))
        >>> W.sum(axis=0).round(12).tolist()
        [1.0, 1.0, 1.0]
    """
    return metropolis_matrix(G).toarray()


def _eigenvalues(W: np.ndarray | sparse.spmatrix) -> tuple[float, float]:
    """(second largest, smallest) eigenvalue of a symmetric stochastic matrix."""
    n = W.shape[0]
    if n <= _DENSE_LIMIT:
        dense = W.toarray() if sparse.issparse(W) else np.asarray(W)
        lam = np.linalg.eigvalsh(dense)
        return float(lam[-2]), float(lam[0])
    top = eigsh(W, k=2, which="LA", return_eigenvectors=False, tol=1e-10)
    low = eigsh(W, k=1, which="SA", return_eigenvectors=False, tol=1e-10)
    return float(np.sort(top)[0]), float(low[0])


def slem(W: np.ndarray | sparse.spmatrix) -> float:
    """Second-largest eigenvalue modulus of a symmetric doubly stochastic matrix.

    1 when the graph is disconnected (gossip never reaches the global mean).
    """
    if W.shape[0] < 2:
        return 0.0
    second, smallest = _eigenvalues(W)
    return max(abs(second), abs(smallest))


def spectral_gap(W: np.ndarray | sparse.spmatrix) -> float:
    """``1 - SLEM``: the per-round contraction margin."""
    return 1.0 - slem(W)


def predicted_rounds(W: np.ndarray | sparse.spmatrix, tol: float) -> float:
    """Rounds after which ``||x_t - mean|| <= tol ||x_0 - mean||`` for every start.

    ``ceil(log(tol) / log(SLEM))``; ``inf`` when the graph is disconnected.
    """
    if not 0 < tol < 1:
        raise GraphError(f"tol must be in (0, 1), got {tol}")
    lam = slem(W)
    if lam >= 1 - 1e-12:
        return math.inf
    if lam <= 0:
        return 1.0
    return float(math.ceil(math.log(tol) / math.log(lam)))


def predicted_rounds_for(
    W: np.ndarray | sparse.spmatrix, x0: np.ndarray, tol: float, *, modes: int = 64
) -> float:
    """Rounds for this start ``x0`` to reach relative error ``tol``, from W's eigenmodes.

    Expands ``x0 - mean`` in W's eigenvectors: the error after ``t`` rounds is
    ``sqrt(sum_i lambda_i^(2t) ||c_i||^2)``. Exact for ``n <= 2000`` (all modes); above, the
    ``modes`` slowest modes are exact and the rest is bounded by the next eigenvalue.
    ``predicted_rounds`` is the worst case over starts; this one is what a given start sees.
    """
    if not 0 < tol < 1:
        raise GraphError(f"tol must be in (0, 1), got {tol}")
    x = np.asarray(x0, dtype=np.float64).reshape(W.shape[0], -1)
    e0 = x - x.mean(axis=0)
    total = float((e0**2).sum())
    if total == 0:
        return 0.0
    n = W.shape[0]
    if n <= _DENSE_LIMIT:
        dense = W.toarray() if sparse.issparse(W) else np.asarray(W)
        lam, vec = np.linalg.eigh(dense)
        rest_lam, rest_energy = 0.0, 0.0
    else:
        k = min(modes + 1, n - 2)
        lam, vec = eigsh(W, k=k, which="LM", tol=1e-10)
        rest_lam = float(np.min(np.abs(lam)))
    coeff = (vec.T @ e0) ** 2  # (modes, d) energy per mode
    energy = coeff.sum(axis=1)
    keep = lam < 1 - 1e-9
    if energy[~keep].sum() > 1e-12 * total:
        return math.inf  # disconnected: part of the error never decays
    lam, energy = np.abs(lam[keep]), energy[keep]
    if n > _DENSE_LIMIT:
        rest_energy = max(0.0, total - energy.sum())

    def error(t: int) -> float:
        return math.sqrt(float((lam ** (2 * t) * energy).sum()) + rest_lam ** (2 * t) * rest_energy)

    target = tol * math.sqrt(total)
    hi = 1
    while error(hi) > target:
        hi *= 2
        if hi > 10**9:
            return math.inf
    lo = hi // 2
    while lo + 1 < hi:
        mid = (lo + hi) // 2
        if error(mid) > target:
            lo = mid
        else:
            hi = mid
    return float(hi)
