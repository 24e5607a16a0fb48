"""Classifiers on the learned features, read off a layer built on them (the "head").

Nearest subspace (ReduNet's evaluation): class j's subspace is spanned by the ``dim``
eigenvectors of ``C_j`` with the smallest eigenvalues, which are the top principal directions
of that class's features (``C_j`` shares eigenvectors with ``Z^T Pi_j Z``, eigenvalues
``alpha_j / (1 + alpha_j sigma)``). A sample goes to the class whose subspace leaves the
smallest residual. Softmax: ``argmax_j softmax_j(-lam ||C_j z||)``, ReduNet's ``pi_j``.
"""

from __future__ import annotations

import numpy as np

from ._errors import LoLaFLError
from ._validation import as_count, as_unit_rows
from .layer import LayerParams, class_membership


def subspace_bases(head: LayerParams, dim: int) -> np.ndarray:
    """Orthonormal bases (J, d, dim) of the class subspaces encoded by ``head.C``."""
    dim = as_count(dim, "subspace_dim")
    if dim > head.dim:
        raise LoLaFLError(f"subspace_dim must be <= d={head.dim}, got {dim}")
    _, vectors = np.linalg.eigh(head.C)  # ascending eigenvalues per class
    return vectors[:, :, :dim]


def nearest_subspace(Z: np.ndarray, bases: np.ndarray) -> np.ndarray:
    """Class (m,) int whose subspace is nearest to each row of ``Z`` (m, d), unit-norm rows.

    The residual ``||z - U_j U_j^T z||^2 = 1 - ||U_j^T z||^2`` is smallest where the
    projection is largest.
    """
    Z = as_unit_rows(Z)
    energy = np.stack([np.linalg.norm(Z @ U, axis=1) for U in bases], axis=1)
    return energy.argmax(axis=1)


def softmax_classes(Z: np.ndarray, head: LayerParams, lam: float) -> np.ndarray:
    """Class (m,) int maximizing ``softmax_j(-lam ||C_j z||)`` for rows of ``Z`` (m, d)."""
    return class_membership(Z, head, lam).argmax(axis=1)
