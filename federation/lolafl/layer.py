"""One ReduNet layer: its parameters (E, C_j, gamma) and its forward update.

With features Z (m, d), unit-norm rows, labels in J classes and distortion eps2:
``alpha = d / (m eps2)``, ``alpha_j = d / (m_j eps2)``, ``gamma_j = m_j / m``,
``E = alpha (I + alpha Z^T Z)^-1``, ``C_j = alpha_j (I + alpha_j Z^T Pi_j Z)^-1`` and the
update ``z <- normalize(z + eta (E z - sum_j gamma_j pi_j(z) C_j z))``, where ``pi_j(z)``
is the label (training) or ``softmax_j(-lam ||C_j z||)`` (inference).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from scipy.special import softmax

from ._errors import LoLaFLError
from ._linalg import pack_symmetric, regularized_inverse, triangle_size, unpack_symmetric
from ._validation import (
    as_labels,
    as_positive,
    as_unit_rows,
    normalize_rows,
    require_all_classes,
)
from .statistics import class_grams

_BLOCK_ROWS = 2048  # rows per block when all J compressions are needed: J * 2048 * d floats


@dataclass(frozen=True)
class LayerParams:
    """Parameters of one layer.

    Attributes:
        E: (d, d) float, the expansion operator.
        C: (J, d, d) float, the compression operator of each class.
        gamma: (J,) float, the class proportions m_j / m (sum 1).
    """

    E: np.ndarray
    C: np.ndarray
    gamma: np.ndarray

    def __post_init__(self) -> None:
        d = self.E.shape[0]
        if self.E.shape != (d, d) or self.C.ndim != 3 or self.C.shape[1:] != (d, d):
            raise LoLaFLError(
                f"LayerParams needs E (d, d) and C (J, d, d), got {self.E.shape} and {self.C.shape}"
            )
        if self.gamma.shape != (self.C.shape[0],):
            raise LoLaFLError(
                f"LayerParams.gamma must have shape ({self.C.shape[0]},), got {self.gamma.shape}"
            )

    @property
    def dim(self) -> int:
        """Feature dimension d."""
        return self.E.shape[0]

    @property
    def num_classes(self) -> int:
        """Number of classes J."""
        return self.C.shape[0]

    @property
    def num_values(self) -> int:
        """Values needed to send the layer: (J + 1) upper triangles plus gamma."""
        return (self.num_classes + 1) * triangle_size(self.dim) + self.num_classes

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The layer as named arrays (symmetric matrices packed as upper triangles)."""
        return {"E": pack_symmetric(self.E), "C": pack_symmetric(self.C), "gamma": self.gamma}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> LayerParams:
        """Inverse of :meth:`to_arrays`."""
        return cls(
            E=unpack_symmetric(arrays["E"]),
            C=unpack_symmetric(arrays["C"]),
            gamma=np.asarray(arrays["gamma"], dtype=np.float64),
        )


def params_from_grams(grams: np.ndarray, counts: np.ndarray, eps2: float) -> LayerParams:
    """The layer for per-class Gram matrices ``grams[j] = Z^T Pi_j Z`` (J, d, d).

    Args:
        grams: (J, d, d) float, PSD.
        counts: (J,) int, samples per class m_j; every class needs at least one.
        eps2: distortion eps^2 > 0.
    """
    eps2 = as_positive(eps2, "eps2")
    counts = require_all_classes(counts)
    d = grams.shape[-1]
    m = int(counts.sum())
    E = regularized_inverse(grams.sum(axis=0), d / (m * eps2))
    C = np.stack(
        [regularized_inverse(g, d / (int(mj) * eps2)) for g, mj in zip(grams, counts, strict=True)]
    )
    return LayerParams(E=E, C=C, gamma=counts / m)


def layer_params(Z: np.ndarray, labels: np.ndarray, num_classes: int, eps2: float) -> LayerParams:
    """The centralized layer of ReduNet for features ``Z`` (m, d), unit-norm rows.

    Example: ``layer_params(Z, y, 3, 0.1).E`` is ``alpha (I + alpha Z^T Z)^-1``.
    """
    Z = as_unit_rows(Z)
    labels = as_labels(labels, Z.shape[0], num_classes)
    grams, counts = class_grams(Z, labels, num_classes)
    return params_from_grams(grams, counts, eps2)


def class_membership(Z: np.ndarray, params: LayerParams, lam: float) -> np.ndarray:
    """Soft class memberships ``softmax_j(-lam ||C_j z||)`` as an (m, J) array."""
    Z = as_unit_rows(Z)
    lam = as_positive(lam, "lam")
    out = np.empty((Z.shape[0], params.num_classes))
    for rows, CZ in _compressions(Z, params):
        out[rows] = _membership(CZ, lam)
    return out


def apply_layer(
    Z: np.ndarray,
    params: LayerParams,
    eta: float,
    *,
    labels: np.ndarray | None = None,
    lam: float = 500.0,
) -> np.ndarray:
    """One forward step: ``normalize(Z + eta (Z E - sum_j gamma_j pi_j (Z C_j)))``.

    Args:
        Z: (m, d) float, unit-norm rows.
        params: the layer.
        eta: step size > 0.
        labels: (m,) int class per row (training: pi is the one-hot label); None
            estimates pi with ``softmax(-lam ||C_j z||)`` (inference).
        lam: softmax sharpness used when ``labels`` is None.

    Returns:
        (m, d) float, unit-norm rows.
    """
    Z = as_unit_rows(Z)
    if Z.shape[1] != params.dim:
        raise LoLaFLError(f"Z has {Z.shape[1]} columns but the layer has d={params.dim}")
    eta = as_positive(eta, "eta")
    step = Z @ params.E  # E and C_j are symmetric, so row-wise z E = (E z)^T
    if labels is not None:
        labels = as_labels(labels, Z.shape[0], params.num_classes)
        for j in np.unique(labels):
            rows = labels == j
            step[rows] -= params.gamma[j] * (Z[rows] @ params.C[j])
    else:
        lam = as_positive(lam, "lam")
        for rows, CZ in _compressions(Z, params):
            weights = params.gamma[:, None] * _membership(CZ, lam).T  # (J, b)
            step[rows] -= np.einsum("jb,jbd->bd", weights, CZ)
    return normalize_rows(Z + eta * step)


def _compressions(Z: np.ndarray, params: LayerParams) -> Iterator[tuple[slice, np.ndarray]]:
    """Row blocks of Z with their compressions ``Z_block C_j`` stacked as (J, b, d)."""
    for start in range(0, Z.shape[0], _BLOCK_ROWS):
        rows = slice(start, start + _BLOCK_ROWS)
        yield rows, np.matmul(Z[rows], params.C)


def _membership(CZ: np.ndarray, lam: float) -> np.ndarray:
    """(b, J) ``softmax_j(-lam ||C_j z||)`` from compressions (J, b, d)."""
    return softmax(-lam * np.linalg.norm(CZ, axis=2).T, axis=1)
