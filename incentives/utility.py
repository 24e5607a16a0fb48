"""Utilities of coalitions: a counting cache, and the federated-learning utility.

Example:
    >>> u = CachedUtility(lambda s: float(len(s)))
    >>> u(frozenset({1, 2})), u(frozenset({2, 1})), u.evaluations
    (2.0, 2.0, 1)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from ._errors import IncentiveError

Utility = Callable[[frozenset], float]


class CachedUtility:
    """Evaluates each coalition once and counts the distinct evaluations.

    Raises:
        IncentiveError: the utility of a coalition is NaN or infinite (the message names the
            coalition), so no method turns it into NaN values.
    """

    def __init__(self, utility: Utility) -> None:
        self._utility = utility
        self._cache: dict[frozenset, float] = {}

    def __call__(self, coalition: frozenset) -> float:
        key = frozenset(coalition)
        if key not in self._cache:
            value = float(self._utility(key))
            if not np.isfinite(value):
                raise IncentiveError(
                    f"the utility of coalition {sorted(key)} is {value}: it must be a finite number"
                )
            self._cache[key] = value
        return self._cache[key]

    def __contains__(self, coalition: frozenset) -> bool:
        """Whether ``coalition`` was evaluated already (asking does not evaluate it)."""
        return frozenset(coalition) in self._cache

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
        global_params: w_t, the global model before the round: name -> array.
        updates: per client, its update ``delta_i = w_i - w_t`` (same names and shapes).
        weights: per client, its weight (e.g. number of examples), >= 0.
        evaluate: validation metric of a parameter dict (higher is better), e.g. NDCG@10.

    Example:
        >>> u = fl_utility({"w": np.zeros(2)}, [{"w": np.ones(2)}], [1.0], lambda p: p["w"].sum())
        >>> u(frozenset()), u(frozenset({0}))
        (0.0, 2.0)
    """
    w = np.asarray(weights, dtype=float)
    if w.shape != (len(updates),) or not np.isfinite(w).all() or (w < 0).any():
        raise IncentiveError(
            f"weights must be {len(updates)} finite numbers >= 0 (one per update), got {weights}"
        )
    base = {k: np.asarray(v, dtype=float) for k, v in global_params.items()}
    for i, update in enumerate(updates):
        shapes = {k: np.shape(v) for k, v in update.items()}
        if shapes != {k: v.shape for k, v in base.items()}:
            raise IncentiveError(
                f"updates[{i}] must have the names and shapes of global_params "
                f"{ {k: v.shape for k, v in base.items()} }, got {shapes}"
            )

    def utility(coalition: frozenset) -> float:
        members = sorted(coalition)
        total = w[members].sum()
        if total <= 0:  # nobody, or only zero-weight members: the model stays w_t
            return float(evaluate({k: v.copy() for k, v in base.items()}))
        mixed = {
            k: v + sum(w[i] * np.asarray(updates[i][k], dtype=float) for i in members) / total
            for k, v in base.items()
        }
        return float(evaluate(mixed))

    return utility
