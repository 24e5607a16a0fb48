"""Feature sources for runs and tests, and one client's local split of them.

A source is "synthetic" (:func:`synthetic_subspaces` with its defaults) or the path of an
``.npz`` file with ``features`` (n, d) and ``labels`` (n,) (e.g. the MiniLM embeddings the
benchmark caches). Every client loads the whole source and keeps its own partition, so a
simulation needs no data server; the partition depends only on the seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._errors import LoLaFLError
from ._validation import as_count, as_features, as_positive
from .partition import dirichlet_partition, iid_partition


@dataclass(frozen=True)
class ClientData:
    """One client's data: train and test features (rows) with labels, and the class count."""

    train_features: np.ndarray
    train_labels: np.ndarray
    test_features: np.ndarray
    test_labels: np.ndarray
    num_classes: int


def synthetic_subspaces(
    num_samples: int = 1200,
    dim: int = 32,
    num_classes: int = 4,
    *,
    subspace_dim: int = 3,
    noise: float = 0.3,
    rng: np.random.Generator | int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Unit-norm samples (n, d) near one random ``subspace_dim``-dim subspace per class.

    Returns features (n, d) and labels (n,), with classes as balanced as n allows.
    """
    num_samples = as_count(num_samples, "num_samples")
    num_classes = as_count(num_classes, "num_classes")
    dim = as_count(dim, "dim")
    subspace_dim = as_count(subspace_dim, "subspace_dim")
    if subspace_dim > dim:
        raise LoLaFLError(f"subspace_dim must be <= dim={dim}, got {subspace_dim}")
    gen = np.random.default_rng(rng)
    bases = np.linalg.qr(gen.normal(size=(num_classes, dim, subspace_dim)))[0]
    labels = gen.permutation(np.arange(num_samples) % num_classes)
    coords = gen.normal(size=(num_samples, subspace_dim))
    Z = np.einsum("nk,ndk->nd", coords, bases[labels]) + noise * gen.normal(
        size=(num_samples, dim)
    ) / np.sqrt(dim)
    return Z / np.linalg.norm(Z, axis=1, keepdims=True), labels


def load_features(source: str | Path, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Features (n, d) and labels (n,) of a source: "synthetic" (seeded) or an .npz path."""
    if str(source) == "synthetic":
        return synthetic_subspaces(rng=np.random.default_rng([seed, 2]))
    path = Path(source)
    if not path.is_file():
        raise LoLaFLError(f"data must be 'synthetic' or an existing .npz file, got {source!r}")
    with np.load(path) as data:
        if "features" not in data or "labels" not in data:
            raise LoLaFLError(f"{path} must hold arrays 'features' (n, d) and 'labels' (n,)")
        return as_features(data["features"], "features"), data["labels"].astype(np.int64)


def client_data(
    source: str | Path,
    partition_id: int,
    num_partitions: int,
    *,
    alpha: float | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> ClientData:
    """The ``partition_id``-th of ``num_partitions`` client splits of ``source``.

    Args:
        source: "synthetic" or an .npz path (see :func:`load_features`).
        partition_id: this client, in [0, num_partitions).
        num_partitions: number of clients K.
        alpha: Dirichlet concentration of the label skew; None splits IID.
        test_fraction: share of the client's samples held out for its local test, in [0, 1).
        seed: seeds the data, the partition and the client's train/test split.
    """
    num_partitions = as_count(num_partitions, "num_partitions")
    if not 0 <= partition_id < num_partitions:
        raise LoLaFLError(f"partition_id must be in [0, {num_partitions}), got {partition_id}")
    if not 0 <= test_fraction < 1:
        raise LoLaFLError(f"test_fraction must be in [0, 1), got {test_fraction}")
    Z, labels = load_features(source, seed)
    partition_rng = np.random.default_rng([seed, 0])
    if alpha is None:
        parts = iid_partition(labels.size, num_partitions, partition_rng)
    else:
        parts = dirichlet_partition(
            labels, num_partitions, as_positive(alpha, "alpha"), partition_rng
        )
    idx = np.random.default_rng([seed, 1, partition_id]).permutation(parts[partition_id])
    n_test = min(round(test_fraction * idx.size), idx.size - 1)  # keep >= 1 to train
    test, train = idx[:n_test], idx[n_test:]
    return ClientData(
        train_features=Z[train],
        train_labels=labels[train],
        test_features=Z[test],
        test_labels=labels[test],
        num_classes=int(labels.max()) + 1,
    )
