"""Dense symmetric linear algebra shared by layers, statistics and messages."""

from __future__ import annotations

import numpy as np
import scipy.linalg

from ._errors import LoLaFLError


def regularized_inverse(gram: np.ndarray, alpha: float) -> np.ndarray:
    """``alpha (I + alpha gram)^-1`` for a PSD (d, d) ``gram``: ReduNet's E and C_j."""
    d = gram.shape[0]
    return alpha * spd_inverse(np.eye(d) + alpha * gram)


def spd_inverse(A: np.ndarray) -> np.ndarray:
    """Inverse of a symmetric positive-definite (d, d) matrix, symmetrized."""
    factor = scipy.linalg.cho_factor(A, lower=True)
    inv = scipy.linalg.cho_solve(factor, np.eye(A.shape[0]))
    return (inv + inv.T) / 2


def top_factor(gram: np.ndarray, rank: int | None) -> np.ndarray:
    """(d, r) factor ``W`` with ``W W^T`` the best rank-r approximation of a PSD ``gram``.

    Directions with eigenvalue <= d * machine-eps * the largest are dropped (they are
    rounding noise), so ``r <= min(rank, numerical rank)``.
    """
    values, vectors = np.linalg.eigh(gram)
    values, vectors = values[::-1], vectors[:, ::-1]
    tol = gram.shape[0] * np.finfo(np.float64).eps * max(float(values[0]), 0.0)
    keep = int(np.count_nonzero(values > tol))
    if rank is not None:
        keep = min(keep, rank)
    return vectors[:, :keep] * np.sqrt(values[:keep])


def pack_symmetric(A: np.ndarray) -> np.ndarray:
    """Upper triangles of symmetric (..., d, d) matrices as (..., d (d + 1) / 2) values."""
    rows, cols = np.triu_indices(A.shape[-1])
    return A[..., rows, cols]


def unpack_symmetric(values: np.ndarray) -> np.ndarray:
    """Inverse of :func:`pack_symmetric`: (..., d (d + 1) / 2) values to (..., d, d)."""
    values = np.asarray(values, dtype=np.float64)
    size = values.shape[-1]
    d = int((np.sqrt(8 * size + 1) - 1) / 2)
    if triangle_size(d) != size:
        raise LoLaFLError(f"{size} values are not the upper triangle of a square matrix")
    rows, cols = np.triu_indices(d)
    out = np.zeros((*values.shape[:-1], d, d))
    out[..., rows, cols] = values
    out[..., cols, rows] = values
    return out


def triangle_size(d: int) -> int:
    """Number of values in the upper triangle of a (d, d) matrix."""
    return d * (d + 1) // 2
