"""Split a labelled data set across clients: IID or label-skewed with a Dirichlet prior."""

from __future__ import annotations

import numpy as np

from ._errors import LoLaFLError
from ._validation import as_count, as_positive

_MAX_DRAWS = 1000


def iid_partition(
    num_samples: int, num_clients: int, rng: np.random.Generator | int | None = None
) -> list[np.ndarray]:
    """Shuffle ``range(num_samples)`` into ``num_clients`` near-equal parts (sorted indices).

    Example: ``[len(p) for p in iid_partition(10, 3, rng=0)]`` is ``[4, 3, 3]``.
    """
    num_samples = as_count(num_samples, "num_samples")
    num_clients = as_count(num_clients, "num_clients")
    if num_clients > num_samples:
        raise LoLaFLError(f"num_clients ({num_clients}) must be <= num_samples ({num_samples})")
    order = np.random.default_rng(rng).permutation(num_samples)
    return [np.sort(part) for part in np.array_split(order, num_clients)]


def dirichlet_partition(
    labels: np.ndarray,
    num_clients: int,
    alpha: float,
    rng: np.random.Generator | int | None = None,
    *,
    min_size: int = 1,
) -> list[np.ndarray]:
    """Label-skewed split: each class is divided among clients in ``Dirichlet(alpha)`` shares.

    Small ``alpha`` (0.1) gives each client few classes; large (100) is close to IID.
    Draws repeat until every client holds at least ``min_size`` samples.

    Args:
        labels: (n,) int class per sample.
        num_clients: K >= 1.
        alpha: concentration > 0 of the symmetric Dirichlet prior.
        rng: seed or generator.
        min_size: smallest allowed client (>= 1).

    Returns:
        K sorted index arrays that partition ``range(n)``.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.size == 0:
        raise LoLaFLError(f"labels must be a non-empty 1-D array, got shape {labels.shape}")
    num_clients = as_count(num_clients, "num_clients")
    alpha = as_positive(alpha, "alpha")
    min_size = as_count(min_size, "min_size")
    if num_clients * min_size > labels.size:
        raise LoLaFLError(
            f"{labels.size} samples cannot give {num_clients} clients {min_size} each"
        )
    gen = np.random.default_rng(rng)
    by_class = [gen.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    for _ in range(_MAX_DRAWS):
        parts: list[list[np.ndarray]] = [[] for _ in range(num_clients)]
        for idx in by_class:
            shares = gen.dirichlet(np.full(num_clients, alpha))
            cuts = np.round(np.cumsum(shares)[:-1] * idx.size).astype(int)
            for k, chunk in enumerate(np.split(idx, cuts)):
                parts[k].append(chunk)
        out = [np.sort(np.concatenate(p)) for p in parts]
        if min(p.size for p in out) >= min_size:
            return out
    raise LoLaFLError(
        f"no Dirichlet(alpha={alpha}) draw in {_MAX_DRAWS} gave all {num_clients} clients "
        f">= {min_size} samples: raise alpha, or use fewer clients"
    )
