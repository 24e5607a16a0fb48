"""Malicious client behaviours a run config can switch on for a fraction of clients.

Model attacks act on the update ``delta = w_local - w_global`` a client would send:

- ``sign_flip``: send ``-scale x delta`` (pushes the model the wrong way);
- ``scaling``: send ``scale x delta`` (model replacement / boosting);
- ``noise``: send Gaussian noise with the norm of ``scale x delta``.

``label_flip`` is a data attack: the client trains on permuted labels (``flip_labels``).

Example:
    >>> import numpy as np
    >>> g = {"w": np.zeros(2)}
    >>> attack("sign_flip", g, {"w": np.array([1.0, 2.0])}, scale=1.0, rng=0)["w"].tolist()
    [-1.0, -2.0]
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ._errors import FederationError

ATTACKS = ("none", "sign_flip", "scaling", "noise", "label_flip")


def malicious_partitions(num_partitions: int, fraction: float, seed: int) -> set[int]:
    """Which partitions attack: ``round(fraction x num_partitions)`` of them, seeded."""
    if not 0 <= fraction <= 1:
        raise FederationError(f"attack fraction must be in [0, 1], got {fraction}")
    k = round(fraction * num_partitions)
    chosen = np.random.default_rng(seed).choice(num_partitions, size=k, replace=False)
    return {int(i) for i in chosen}


def attack(
    kind: str,
    global_arrays: Mapping[str, np.ndarray],
    local_arrays: Mapping[str, np.ndarray],
    *,
    scale: float = 1.0,
    rng: np.random.Generator | int | None = None,
) -> dict[str, np.ndarray]:
    """The arrays a malicious client sends instead of ``local_arrays``."""
    if kind not in ATTACKS:
        raise FederationError(f"unknown attack {kind!r}; allowed: {', '.join(ATTACKS)}")
    if kind in ("none", "label_flip"):  # label flips act on the data, not the update
        return {k: np.asarray(v) for k, v in local_arrays.items()}
    gen = np.random.default_rng(rng)
    out = {}
    for k, w in local_arrays.items():
        g = np.asarray(global_arrays[k])
        delta = np.asarray(w) - g
        if kind == "sign_flip":
            bad = -scale * delta
        elif kind == "scaling":
            bad = scale * delta
        else:
            noise = gen.normal(size=delta.shape)
            bad = noise * (scale * np.linalg.norm(delta) / max(np.linalg.norm(noise), 1e-12))
        out[k] = (g + bad).astype(np.asarray(w).dtype)
    return out


def flip_labels(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Label-flip attack: class ``c`` becomes ``num_classes - 1 - c`` (0/1 clicks swap)."""
    y = np.asarray(labels)
    return (num_classes - 1 - y).astype(y.dtype)
