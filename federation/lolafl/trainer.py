"""Layer-wise LoLaFL training (one federated round per layer), the classifier, partitions.

Example:
    >>> rng = np.random.default_rng(0)
    >>> Z = rng.normal(size=(60, 4)) + np.repeat(np.eye(4)[:2] * 3, 30, axis=0)
    >>> Z /= np.linalg.norm(Z, axis=1, keepdims=True)
    >>> y = np.repeat([0, 1], 30)
    >>> model, _ = train_federated([(Z[::2], y[::2]), (Z[1::2], y[1::2])], 2, layers=2)
    >>> float((model.predict(Z) == y).mean()) > 0.9
    True
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._errors import LoLaFLError
from .layer import LayerParams, LayerStats, aggregate, apply_layer, layer_statistics

FLOAT_BYTES = 4  # statistics travel as float32


def normalize_rows(Z: np.ndarray) -> np.ndarray:
    """Rows scaled to unit norm (LoLaFL's input space)."""
    Z = np.asarray(Z, dtype=np.float64)
    norms = np.linalg.norm(Z, axis=1, keepdims=True)
    if (norms == 0).any():
        raise LoLaFLError("feature rows must be non-zero to be normalized")
    return Z / norms


def payload_bytes(stats: LayerStats, scheme: str, rank: int | None = None) -> int:
    """Bytes a client uploads for one layer: HM sends E_k and each present C_jk (d x d);
    CM sends rank-r factors (d x r) of its Gram matrix and of each present class's."""
    d, present = stats.d, int((stats.counts > 0).sum())
    per_matrix = d * d if scheme == "hm" else d * (d if rank is None else min(rank, d))
    return (1 + present) * per_matrix * FLOAT_BYTES + stats.counts.size * 8


def layer_bytes(layer: LayerParams) -> int:
    """Bytes the server broadcasts for one layer (E, every C_j, gamma)."""
    return (layer.E.size + layer.C.size + layer.gamma.size) * FLOAT_BYTES


@dataclass
class LoLaFLModel:
    """A trained white-box network: L layers plus a compression head for classification."""

    layers: list[LayerParams]
    head: LayerParams
    eta: float
    lam: float

    def transform(self, Z: np.ndarray) -> np.ndarray:
        """(m, d) features after every layer (soft class membership at inference)."""
        Z = normalize_rows(Z)
        for layer in self.layers:
            Z = apply_layer(Z, layer, eta=self.eta, lam=self.lam)
        return Z

    def predict(self, Z: np.ndarray) -> np.ndarray:
        """(m,) class with the smallest ``||C_j z||`` (z closest to class j's subspace)."""
        F = self.transform(Z)
        norms = np.linalg.norm(np.einsum("jde,me->mjd", self.head.C, F), axis=2)
        norms[:, self.head.gamma == 0] = np.inf
        return norms.argmin(axis=1)


@dataclass
class TrainHistory:
    """Per round (layer): bytes up (all clients) and down (broadcast to all clients)."""

    bytes_up: list[int] = field(default_factory=list)
    bytes_down: list[int] = field(default_factory=list)


def train_federated(
    clients: list[tuple[np.ndarray, np.ndarray]],
    num_classes: int,
    *,
    layers: int = 4,
    eps2: float = 0.5,
    eta: float = 0.5,
    lam: float = 500.0,
    scheme: str = "hm",
    rank: int | None = None,
) -> tuple[LoLaFLModel, TrainHistory]:
    """Build ``layers`` layers, one federated round each, plus the classifier head.

    Args:
        clients: per client, (features (m_k, d), labels (m_k,)).
        num_classes: J.
        layers: L, the number of rounds (one layer per round) before the head.
        eps2, eta, lam: distortion, step size, membership sharpness.
        scheme, rank: aggregation (see ``aggregate``).
    """
    if layers < 0:
        raise LoLaFLError(f"layers must be >= 0, got {layers}")
    feats = [normalize_rows(Z) for Z, _ in clients]
    labels = [np.asarray(y, dtype=np.int64) for _, y in clients]
    history = TrainHistory()
    built: list[LayerParams] = []
    for _ in range(layers + 1):  # the last round builds the classifier head
        stats = [
            layer_statistics(Z, y, num_classes, eps2) for Z, y in zip(feats, labels, strict=True)
        ]
        layer = aggregate(stats, scheme=scheme, rank=rank)
        history.bytes_up.append(sum(payload_bytes(s, scheme, rank) for s in stats))
        history.bytes_down.append(layer_bytes(layer) * len(clients))
        built.append(layer)
        if len(built) <= layers:
            feats = [
                apply_layer(Z, layer, eta=eta, labels=y) for Z, y in zip(feats, labels, strict=True)
            ]
    return LoLaFLModel(layers=built[:-1], head=built[-1], eta=eta, lam=lam), history


def dirichlet_partition(
    labels: np.ndarray,
    num_clients: int,
    alpha: float,
    *,
    rng: np.random.Generator | int | None = None,
) -> list[np.ndarray]:
    """Split sample indices across clients with class shares ~ Dirichlet(alpha).

    Small ``alpha`` (0.1) gives each client few classes (non-IID); large (100) is near IID.
    Every client gets at least one sample.
    """
    if num_clients < 1:
        raise LoLaFLError(f"num_clients must be >= 1, got {num_clients}")
    if not alpha > 0:
        raise LoLaFLError(f"alpha must be > 0, got {alpha}")
    y = np.asarray(labels)
    if y.size < num_clients:
        raise LoLaFLError(f"{y.size} samples cannot fill {num_clients} clients")
    gen = np.random.default_rng(rng)
    parts: list[list[int]] = [[] for _ in range(num_clients)]
    for c in np.unique(y):
        idx = gen.permutation(np.flatnonzero(y == c))
        shares = gen.dirichlet(np.full(num_clients, alpha))
        cuts = (np.cumsum(shares)[:-1] * idx.size).astype(int)
        for k, chunk in enumerate(np.split(idx, cuts)):
            parts[k].extend(chunk.tolist())
    # Give empty clients one sample from the largest client, so every client can train.
    for k in range(num_clients):
        if not parts[k]:
            donor = max(range(num_clients), key=lambda i: len(parts[i]))
            parts[k].append(parts[donor].pop())
    return [np.sort(np.array(p, dtype=np.int64)) for p in parts]
