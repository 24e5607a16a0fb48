"""One LoLaFL layer: per-client statistics, HM-like and CM-based aggregation, the forward map.

Reconstructed from LoLaFL (arXiv 2412.14668) and ReduNet (Chan et al. 2021); the paper's code
is not public. With features ``Z`` (m, d), unit-norm rows, labels in J classes and distortion
``eps2``:

    alpha = d / (m eps2), alpha_j = d / (m_j eps2), gamma_j = m_j / m
    E   = alpha   (I + alpha   Z^T Z)^-1            (expansion)
    C_j = alpha_j (I + alpha_j Z^T Pi_j Z)^-1       (compression of class j)
    z  <- normalize(z + eta (E z - sum_j gamma_j pi_j(z) C_j z))

Client k with ``m_k`` samples has ``E_k^-1 = I / alpha_k + Z_k^T Z_k``, and
``sum_k (I / alpha_k) = I / alpha``, so the global layer is exactly the harmonic-mean-like
aggregate ``E = (sum_k E_k^-1)^-1`` (likewise for each ``C_j`` over the clients that hold
class j). CM-based: clients send (rank-r factors of) their Gram matrices ``Z_k^T Z_k`` and
``Z_k^T Pi_j Z_k``; the server sums them and forms ``E`` and ``C_j`` (exact at full rank).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import linalg

from ._errors import LoLaFLError


@dataclass(frozen=True)
class LayerStats:
    """What one client computes for one layer (nothing here reveals single samples at full d).

    Attributes:
        m: number of samples.
        counts: (J,) int, samples per class.
        eps2: distortion ``epsilon^2``.
        E: (d, d) the client's own expansion matrix ``alpha_k (I + alpha_k Z^T Z)^-1``.
        C: (J, d, d) the client's compression matrices (zeros for absent classes).
        gram_vals: (d,) eigenvalues of ``Z^T Z``, descending.
        gram_vecs: (d, d) matching eigenvectors (columns).
        class_vals: (J, d) eigenvalues of ``Z^T Pi_j Z``, descending.
        class_vecs: (J, d, d) matching eigenvectors.
    """

    m: int
    counts: np.ndarray
    eps2: float
    E: np.ndarray
    C: np.ndarray
    gram_vals: np.ndarray
    gram_vecs: np.ndarray
    class_vals: np.ndarray
    class_vecs: np.ndarray

    @property
    def d(self) -> int:
        return self.E.shape[0]

    def factor(self, rank: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Rank-r factors ``F`` (d, r) with ``F F^T ~ Z^T Z`` and (J, d, r) for each class."""
        r = self.d if rank is None else min(rank, self.d)
        f = self.gram_vecs[:, :r] * np.sqrt(np.clip(self.gram_vals[:r], 0, None))
        fj = self.class_vecs[:, :, :r] * np.sqrt(np.clip(self.class_vals[:, None, :r], 0, None))
        return f, fj


@dataclass(frozen=True)
class LayerParams:
    """One global layer.

    Attributes:
        E: (d, d) expansion operator.
        C: (J, d, d) compression operator per class.
        gamma: (J,) class shares ``m_j / m``.
    """

    E: np.ndarray
    C: np.ndarray
    gamma: np.ndarray


def _check_features(Z: np.ndarray, labels: np.ndarray, num_classes: int) -> None:
    if Z.ndim != 2 or Z.shape[0] == 0:
        raise LoLaFLError(f"Z must be (m, d) with m >= 1, got shape {Z.shape}")
    if labels.shape != (Z.shape[0],):
        raise LoLaFLError(f"labels must be ({Z.shape[0]},), got {labels.shape}")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise LoLaFLError(f"labels must lie in 0..{num_classes - 1}")
    norms = np.linalg.norm(Z, axis=1)
    if not np.allclose(norms, 1.0, atol=1e-6):
        raise LoLaFLError("rows of Z must be unit-norm (normalize the features first)")


def _shrink(gram: np.ndarray, a: float) -> np.ndarray:
    """``a (I + a gram)^-1`` via a Cholesky solve (gram is PSD, so I + a gram is SPD)."""
    d = gram.shape[0]
    return a * linalg.cho_solve(linalg.cho_factor(np.eye(d) + a * gram), np.eye(d))


def _eigh_desc(S: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    vals, vecs = np.linalg.eigh(S)
    return vals[::-1], vecs[:, ::-1]


def layer_statistics(
    Z: np.ndarray, labels: np.ndarray, num_classes: int, eps2: float
) -> LayerStats:
    """A client's statistics for one layer.

    Args:
        Z: (m, d) float, one sample per row, rows unit-norm.
        labels: (m,) int in ``0..num_classes-1``.
        num_classes: J.
        eps2: distortion ``epsilon^2`` > 0.

    Example:
        >>> Z = np.eye(3)[[0, 1, 2, 0]]
        >>> layer_statistics(Z, np.array([0, 1, 1, 0]), 2, 0.5).counts.tolist()
        [2, 2]
    """
    Z = np.asarray(Z, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if not eps2 > 0:
        raise LoLaFLError(f"eps2 must be > 0, got {eps2}")
    _check_features(Z, labels, num_classes)
    m, d = Z.shape
    counts = np.bincount(labels, minlength=num_classes)
    gram = Z.T @ Z
    E = _shrink(gram, d / (m * eps2))
    C = np.zeros((num_classes, d, d))
    class_vals = np.zeros((num_classes, d))
    class_vecs = np.zeros((num_classes, d, d))
    for j in np.flatnonzero(counts):
        Zj = Z[labels == j]
        gj = Zj.T @ Zj
        C[j] = _shrink(gj, d / (counts[j] * eps2))
        class_vals[j], class_vecs[j] = _eigh_desc(gj)
    gram_vals, gram_vecs = _eigh_desc(gram)
    return LayerStats(
        m=m,
        counts=counts,
        eps2=float(eps2),
        E=E,
        C=C,
        gram_vals=gram_vals,
        gram_vecs=gram_vecs,
        class_vals=class_vals,
        class_vecs=class_vecs,
    )


def _harmonic(mats: list[np.ndarray]) -> np.ndarray:
    """``(sum_k M_k^-1)^-1`` for SPD matrices."""
    d = mats[0].shape[0]
    total = sum(linalg.cho_solve(linalg.cho_factor(M), np.eye(d)) for M in mats)
    return linalg.cho_solve(linalg.cho_factor(total), np.eye(d))


def aggregate(
    stats_list: list[LayerStats], scheme: str = "hm", rank: int | None = None
) -> LayerParams:
    """The global layer from the clients' statistics.

    Args:
        stats_list: one ``LayerStats`` per client, same d, J and eps2.
        scheme: ``"hm"`` (harmonic-mean-like over the clients' E_k, C_jk: exact) or ``"cm"``
            (sum of the clients' Gram factors, exact at full rank).
        rank: for ``"cm"``: rank of the factors each client sends (None: full).

    Returns:
        LayerParams with E (d, d), C (J, d, d), gamma (J,).
    """
    if not stats_list:
        raise LoLaFLError("aggregate needs at least one client's statistics")
    if scheme not in ("hm", "cm"):
        raise LoLaFLError(f"scheme must be 'hm' or 'cm', got {scheme!r}")
    if rank is not None and (int(rank) != rank or rank < 1):
        raise LoLaFLError(f"rank must be a positive integer or None, got {rank}")
    first = stats_list[0]
    d, J, eps2 = first.d, first.counts.shape[0], first.eps2
    for s in stats_list:
        if s.d != d or s.counts.shape[0] != J or s.eps2 != eps2:
            raise LoLaFLError("all clients must share d, the number of classes and eps2")
    m = sum(s.m for s in stats_list)
    counts = np.sum([s.counts for s in stats_list], axis=0)
    C = np.zeros((J, d, d))
    if scheme == "hm":
        E = _harmonic([s.E for s in stats_list])
        for j in np.flatnonzero(counts):
            C[j] = _harmonic([s.C[j] for s in stats_list if s.counts[j] > 0])
    else:
        factors = [s.factor(rank) for s in stats_list]
        gram = sum(f @ f.T for f, _ in factors)
        E = _shrink(gram, d / (m * eps2))
        for j in np.flatnonzero(counts):
            gj = sum(fj[j] @ fj[j].T for _, fj in factors)
            C[j] = _shrink(gj, d / (counts[j] * eps2))
    return LayerParams(E=E, C=C, gamma=counts / m)


def class_membership(Z: np.ndarray, layer: LayerParams, lam: float) -> np.ndarray:
    """(m, J) ``pi_j(z) = softmax_j(-lambda ||C_j z||)`` (classes with gamma 0 get 0)."""
    norms = np.linalg.norm(np.einsum("jde,me->mjd", layer.C, Z), axis=2)
    logits = np.where(layer.gamma > 0, -lam * norms, -np.inf)
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)


def apply_layer(
    Z: np.ndarray,
    layer: LayerParams,
    *,
    eta: float,
    labels: np.ndarray | None = None,
    lam: float = 500.0,
) -> np.ndarray:
    """One forward step ``z <- normalize(z + eta (E z - sum_j gamma_j pi_j C_j z))``.

    ``pi`` is the one-hot label at training (``labels`` given) and the soft membership
    ``softmax(-lam ||C_j z||)`` at inference.
    """
    Z = np.asarray(Z, dtype=np.float64)
    J = layer.gamma.shape[0]
    pi = np.eye(J)[labels] if labels is not None else class_membership(Z, layer, lam)
    expand = Z @ layer.E.T
    compress = np.einsum("mj,jde,me->md", pi * layer.gamma, layer.C, Z)
    out = Z + eta * (expand - compress)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def to_payload(stats: LayerStats, scheme: str, rank: int | None = None) -> dict[str, np.ndarray]:
    """The arrays a client sends for ``scheme`` (float32 on the wire, counts as int64).

    HM: its own ``E`` and ``C``; CM: rank-r factors of its Gram matrices.
    """
    base = {"counts": stats.counts.astype(np.int64), "m": np.array([stats.m], dtype=np.int64)}
    if scheme == "hm":
        return {**base, "E": stats.E.astype(np.float32), "C": stats.C.astype(np.float32)}
    if scheme == "cm":
        f, fj = stats.factor(rank)
        return {**base, "F": f.astype(np.float32), "FJ": fj.astype(np.float32)}
    raise LoLaFLError(f"scheme must be 'hm' or 'cm', got {scheme!r}")


def from_payload(payload: dict[str, np.ndarray], eps2: float) -> LayerStats:
    """Rebuild the statistics the server needs from what a client sent."""
    counts = np.asarray(payload["counts"], dtype=np.int64)
    m = int(np.asarray(payload["m"]).ravel()[0])
    if "E" in payload:
        E = np.asarray(payload["E"], dtype=np.float64)
        C = np.asarray(payload["C"], dtype=np.float64)
        d, J = E.shape[0], counts.size
        zeros = np.zeros(d)
        return LayerStats(
            m, counts, eps2, E, C, zeros, np.eye(d), np.zeros((J, d)), np.zeros((J, d, d))
        )
    if "F" not in payload:
        raise LoLaFLError("payload must hold either E and C (hm) or F and FJ (cm)")
    f = np.asarray(payload["F"], dtype=np.float64)
    fj = np.asarray(payload["FJ"], dtype=np.float64)
    d = f.shape[0]
    J = counts.size

    def eig_from_factor(factor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        u, s, _ = np.linalg.svd(factor, full_matrices=True)
        vals = np.zeros(d)
        vals[: s.size] = s**2
        return vals, u

    gram_vals, gram_vecs = eig_from_factor(f)
    class_vals = np.zeros((J, d))
    class_vecs = np.zeros((J, d, d))
    for j in range(J):
        class_vals[j], class_vecs[j] = eig_from_factor(fj[j])
    nan = np.full((d, d), np.nan)  # HM matrices are not sent under CM
    return LayerStats(
        m,
        counts,
        eps2,
        nan,
        np.full((J, d, d), np.nan),
        gram_vals,
        gram_vecs,
        class_vals,
        class_vecs,
    )
