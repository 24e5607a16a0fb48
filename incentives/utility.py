"""Utilities of coalitions: a counting cache, and the federated-learning utility.

Example:
    >>> u = CachedUtility(lambda s: float(len(s)))
    >>> u(frozenset({1, 2})), u(frozenset({2, 1})), u.evaluations
    (2.0, 2.0, 1)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

Utility = Callable[[frozenset], float]


class CachedUtility:
    """Evaluates each coalition once and counts the distinct evaluations."""

    def __init__(self, utility: Utility) -> None:
        self._utility = utility
        self._cache: dict[frozenset, float] = {}

    def __call__(self, coalition: frozenset) -> float:
        key = frozenset(coalition)
        if key not in self._cache:
            self._cache[key] = float(self._utility(key))
        return self._cache[key]

    @property
    def evaluations(self) -> int:
        return len(self._cache)


def fl_utility(
    global_params: Mapping[str, np.ndarray],
    updates: Sequence[Mapping[str, np.ndarray]],
    weights: Sequence[float],
    evaluate: Callable[[dict[str, np.ndarray]], float],
) -> Utility:
    """``u(S) = evaluate(w_t + weighted mean of the updates in S)``; ``u(empty) = evaluate(w_t)``.

    Sub-models are rebuilt from this round's updates, never retrained (GTG-Shapley's premise).

    Args:
        global_params: w_t, the global model before the round.
        updates: per client, its update ``delta_i`` (same keys and shapes as w_t).
        weights: per client, its weight (e.g. number of examples).
        evaluate: validation metric of a parameter dict (higher is better).
    """
    w = np.asarray(weights, dtype=float)

    def utility(coalition: frozenset) -> float:
        members = sorted(coalition)
        params = {k: np.asarray(v, dtype=float) for k, v in global_params.items()}
        if members:
            total = w[members].sum()
            for k in params:
                params[k] = (
                    params[k] + sum(w[i] * np.asarray(updates[i][k]) for i in members) / total
                )
        return float(evaluate(params))

    return utility
