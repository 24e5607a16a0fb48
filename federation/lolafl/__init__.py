"""LoLaFL: low-latency forward-only federated learning (arXiv 2412.14668), reconstructed.

Each round builds one ReduNet layer from the clients' layer statistics, with no
backpropagation: HM-like aggregation (exact) or CM-based (low-rank covariance factors).
numpy and scipy only; the Flower apps live in ``federation.lolafl.server_app`` and
``federation.lolafl.client_app`` and are not imported here.

Example:
    >>> import numpy as np
    >>> from federation.lolafl import aggregate, layer_params, layer_statistics
    >>> from federation.lolafl import synthetic_subspaces
    >>> Z, y = synthetic_subspaces(200, 8, 2, rng=0)
    >>> parts = [layer_statistics(Z[:50], y[:50], 2, 0.1), layer_statistics(Z[50:], y[50:], 2, 0.1)]
    >>> bool(np.allclose(aggregate(parts, "hm").E, layer_params(Z, y, 2, 0.1).E, atol=1e-10))
    True
"""

from ._errors import LoLaFLError
from ._validation import normalize_rows
from .aggregation import aggregate, aggregate_messages
from .classifier import nearest_subspace, softmax_classes, subspace_bases
from .datasets import ClientData, client_data, load_features, synthetic_subspaces
from .layer import LayerParams, apply_layer, class_membership, layer_params, params_from_grams
from .messages import CMMessage, HMMessage, message_from_arrays
from .model import LoLaFLModel
from .partition import dirichlet_partition, iid_partition
from .settings import LoLaFLSettings
from .statistics import LayerStatistics, layer_statistics
from .trainer import FitResult, RoundLog, client_round, fit

__all__ = [
    "CMMessage",
    "ClientData",
    "FitResult",
    "HMMessage",
    "LayerParams",
    "LayerStatistics",
    "LoLaFLError",
    "LoLaFLModel",
    "LoLaFLSettings",
    "RoundLog",
    "aggregate",
    "aggregate_messages",
    "apply_layer",
    "class_membership",
    "client_data",
    "client_round",
    "dirichlet_partition",
    "fit",
    "iid_partition",
    "layer_params",
    "layer_statistics",
    "load_features",
    "message_from_arrays",
    "nearest_subspace",
    "normalize_rows",
    "params_from_grams",
    "softmax_classes",
    "subspace_bases",
    "synthetic_subspaces",
]
