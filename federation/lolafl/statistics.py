"""What one client computes about one layer's input: class counts and per-class Gram matrices."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._linalg import regularized_inverse, top_factor
from ._validation import as_labels, as_positive, as_rank, as_scheme, as_unit_rows
from .messages import CMMessage, HMMessage


@dataclass(frozen=True)
class LayerStatistics:
    """A client's sufficient statistics for one layer.

    Attributes:
        counts: (J,) int, samples per class m_kj.
        grams: (J, d, d) float, per-class Gram matrices ``Z_k^T Pi_j Z_k``.
        eps2: the distortion eps^2 the layer is built with.
    """

    counts: np.ndarray
    grams: np.ndarray
    eps2: float

    @property
    def num_samples(self) -> int:
        """m_k, the client's sample count."""
        return int(self.counts.sum())

    def message(self, scheme: str = "hm", rank: int | None = None) -> HMMessage | CMMessage:
        """What the client uploads under ``scheme``.

        "hm": its local layer ``E_k = alpha_k (I + alpha_k Z_k^T Z_k)^-1`` with
        ``alpha_k = d / (m_k eps2)`` and ``C_kj`` for each class it holds.
        "cm": a rank-``rank`` factor of each class Gram matrix (None: full rank).
        """
        scheme = as_scheme(scheme)
        rank = as_rank(rank, scheme)
        d = self.grams.shape[-1]
        present = np.flatnonzero(self.counts > 0)
        if scheme == "hm":
            E = regularized_inverse(self.grams.sum(axis=0), d / (self.num_samples * self.eps2))
            C = np.stack(
                [
                    regularized_inverse(self.grams[j], d / (self.counts[j] * self.eps2))
                    for j in present
                ]
            )
            return HMMessage(counts=self.counts, E=E, C=C)
        factors = [top_factor(self.grams[j], rank) for j in present]
        ranks = np.zeros(len(self.counts), dtype=np.int64)
        ranks[present] = [f.shape[1] for f in factors]
        return CMMessage(
            counts=self.counts,
            ranks=ranks,
            factors=np.concatenate(factors, axis=1),
            eps2=self.eps2,
        )


def layer_statistics(
    Z: np.ndarray, labels: np.ndarray, num_classes: int, eps2: float
) -> LayerStatistics:
    """A client's statistics for one layer.

    Args:
        Z: (m, d) float, one sample per row, rows unit-norm.
        labels: (m,) int in [0, num_classes).
        num_classes: J.
        eps2: distortion eps^2 > 0.

    Example: ``layer_statistics(Z, y, 3, 0.1).message("hm").E`` is the client's own E_k.
    """
    Z = as_unit_rows(Z)
    labels = as_labels(labels, Z.shape[0], num_classes)
    grams, counts = class_grams(Z, labels, num_classes)
    return LayerStatistics(counts=counts, grams=grams, eps2=as_positive(eps2, "eps2"))


def class_grams(
    Z: np.ndarray, labels: np.ndarray, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-class Gram matrices ``Z^T Pi_j Z`` (J, d, d) and counts (J,) of checked input."""
    grams = np.zeros((num_classes, Z.shape[1], Z.shape[1]))
    counts = np.bincount(labels, minlength=num_classes).astype(np.int64)
    for j in np.flatnonzero(counts):
        Zj = Z[labels == j]
        grams[j] = Zj.T @ Zj
    return grams, counts
