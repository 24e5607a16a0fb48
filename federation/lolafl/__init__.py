"""LoLaFL: low-latency forward-only federated learning (one federated round per layer).

Reconstructed from arXiv 2412.14668 and ReduNet (Chan et al. 2021); numpy/scipy only.

Example:
    >>> import numpy as np
    >>> Z = np.eye(4)[[0, 1, 2, 3]]
    >>> layer = aggregate([layer_statistics(Z, np.array([0, 0, 1, 1]), 2, 0.5)])
    >>> layer.E.shape, layer.C.shape, layer.gamma.tolist()
    ((4, 4), (2, 4, 4), [0.5, 0.5])
"""

from ._errors import LoLaFLError
from .layer import (
    LayerParams,
    LayerStats,
    aggregate,
    apply_layer,
    class_membership,
    layer_statistics,
)
from .trainer import (
    LoLaFLModel,
    TrainHistory,
    dirichlet_partition,
    layer_bytes,
    normalize_rows,
    payload_bytes,
    train_federated,
)

__all__ = [
    "LayerParams",
    "LayerStats",
    "LoLaFLError",
    "LoLaFLModel",
    "TrainHistory",
    "aggregate",
    "apply_layer",
    "class_membership",
    "dirichlet_partition",
    "layer_bytes",
    "layer_statistics",
    "normalize_rows",
    "payload_bytes",
    "train_federated",
]
