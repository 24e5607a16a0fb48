"""Exact semivalues by enumerating all 2^n coalitions (Shapley and Banzhaf, n <= 16).

``phi_i = sum_{S without i} weight(|S|) (v(S + i) - v(S))`` with the Shapley weight
``|S|! (n - |S| - 1)! / n!`` or the Banzhaf weight ``1 / 2^(n-1)``. Each coalition is evaluated
once (the caller's ``CachedUtility`` counts them).

Example:
    >>> from incentives.utility import CachedUtility
    >>> exact_semivalue(CachedUtility(lambda s: float(len(s) >= 2)), 3).round(4).tolist()
    [0.3333, 0.3333, 0.3333]
"""

from __future__ import annotations

import math

import numpy as np

from .utility import CachedUtility

MAX_EXACT = 16  # 2^16 = 65,536 coalitions


def exact_semivalue(u: CachedUtility, n: int, *, banzhaf: bool = False) -> np.ndarray:
    """(n,) exact Shapley (or Banzhaf) values of the n-player game ``u``."""
    masks = np.arange(1 << n)
    v = np.array([u(frozenset(i for i in range(n) if mask >> i & 1)) for mask in masks])
    size = np.array([mask.bit_count() for mask in range(1 << n)])
    if banzhaf:
        weight = np.full(n, 1.0 / (1 << (n - 1)))
    else:
        weight = np.array(
            [math.factorial(s) * math.factorial(n - s - 1) / math.factorial(n) for s in range(n)]
        )
    out = np.zeros(n)
    for i in range(n):
        without = masks[(masks >> i & 1) == 0]
        out[i] = float((weight[size[without]] * (v[without | (1 << i)] - v[without])).sum())
    return out
