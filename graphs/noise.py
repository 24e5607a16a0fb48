"""Local noise hooks: applied to a message before it leaves a node (local differential privacy).

A hook is any ``noise(values, rng) -> values``; these two add the classic mechanisms. The
calibration (which scale buys which epsilon) is the caller's, e.g. with ``agents.privacy``.

Example:
    >>> import numpy as np
    >>> hook = gaussian_noise(0.0)
    >>> hook(np.ones(3), np.random.default_rng(0)).tolist()
    [1.0, 1.0, 1.0]
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ._errors import GraphError

NoiseHook = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def _additive(
    name: str, draw: Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]
) -> NoiseHook:
    def hook(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return values + draw(rng, values.shape).astype(values.dtype)

    hook.__name__ = hook.__qualname__ = name  # what gossip's errors call the hook
    return hook


def gaussian_noise(sigma: float) -> NoiseHook:
    """Add N(0, sigma^2) to every value sent (the Gaussian mechanism)."""
    if not sigma >= 0:
        raise GraphError(f"sigma must be >= 0, got {sigma}")
    return _additive(
        f"gaussian_noise({sigma:g})", lambda rng, shape: rng.normal(0.0, sigma, size=shape)
    )


def laplace_noise(scale: float) -> NoiseHook:
    """Add Laplace(0, scale) to every value sent (sensitivity / epsilon for epsilon-LDP)."""
    if not scale >= 0:
        raise GraphError(f"scale must be >= 0, got {scale}")
    return _additive(
        f"laplace_noise({scale:g})", lambda rng, shape: rng.laplace(0.0, scale, size=shape)
    )
