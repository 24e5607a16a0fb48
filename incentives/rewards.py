"""Token rewards for contributions: a revenue-funded budget, diminishing returns, a floor.

Per round, with contribution values ``v`` (n,) and auction revenue ``R`` (tokens):

- budget ``B = revenue_share x R``;
- raw reward ``r_i = price x sqrt(v_i)`` if ``v_i > 0``, else 0 (zero or negative value earns
  nothing; concave: four times the value earns twice the pay);
- floor: every positive contributor gets at least ``floor_share x mean_{v_j > 0} r_j``, which
  lifts newcomers and small contributors so wealth does not concentrate (``gini`` measures it);
- if ``sum r > B`` every reward is scaled by ``B / sum r`` (what is not paid stays unminted);
- demand: with ``g = sum_i max(v_i, 0)`` the round's gain and ``ema`` its running average,
  ``price *= clip(ema / g, 1/2, 2) ** demand_rate``: scarce value (small gains) costs more.

A round's total (:meth:`RewardPolicy.round_total`, what ``RoundPayer`` pays) comes from one of
two pools: ``pool = "value"`` prices the gain (``min(B, price x sqrt(g))``: small gains earn
little, however large the revenue); ``pool = "revenue"`` pays the whole budget ``B`` whenever
the round's gain is positive (nothing otherwise), so contributors' pay follows the market's
revenue and is comparable to what taking part costs them. Neither depends on how many
identities share the gain.

Example:
    >>> policy = RewardPolicy(revenue_share=0.1)
    >>> policy.pay(np.array([0.04, 0.01, 0.0, -0.2]), revenue=100.0).round(3).tolist()
    [0.2, 0.1, 0.0, 0.0]
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from ._errors import IncentiveError


def gini(x: np.ndarray) -> float:
    """Gini coefficient of non-negative amounts (0 = equal, -> 1 = one holds everything)."""
    a = np.sort(np.asarray(x, dtype=float).ravel())
    if not np.isfinite(a).all() or (a < 0).any():
        raise IncentiveError(f"x must hold finite amounts >= 0, got {x!r}")
    if a.sum() == 0:
        return 0.0
    n = a.size
    return float(np.clip((2 * np.arange(1, n + 1) - n - 1) @ a / (n * a.sum()), 0.0, 1.0))


@dataclass
class RewardPolicy:
    """Per-round token rewards (see module doc).

    Args:
        revenue_share: share of the round's auction revenue that funds rewards, in [0, 1].
        floor_share: minimum reward of any positive contributor, as a share of the mean
            positive reward (lifts newcomers and small contributors).
        price: initial tokens per sqrt unit of value.
        demand_rate: how fast the price follows demand, in [0, 1].
        pool: what sizes a round's total in :meth:`round_total`: ``"value"`` (the priced
            gain, capped by the budget) or ``"revenue"`` (the whole budget when the gain is
            positive).
    """

    revenue_share: float = 0.1
    floor_share: float = 0.25
    price: float = 1.0
    demand_rate: float = 0.2
    pool: Literal["value", "revenue"] = "value"
    _gain_ema: float | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if not 0 <= self.revenue_share <= 1:
            raise IncentiveError(f"revenue_share must be in [0, 1], got {self.revenue_share}")
        if not 0 <= self.floor_share <= 1:
            raise IncentiveError(f"floor_share must be in [0, 1], got {self.floor_share}")
        if not 0 <= self.demand_rate <= 1:
            raise IncentiveError(f"demand_rate must be in [0, 1], got {self.demand_rate}")
        if not 0 < self.price < math.inf:
            raise IncentiveError(f"price must be a finite number > 0, got {self.price}")
        if self.pool not in ("value", "revenue"):
            raise IncentiveError(f"pool must be 'value' or 'revenue', got {self.pool!r}")

    def pay(self, values: np.ndarray, revenue: float) -> np.ndarray:
        """(n,) tokens for this round's (n,) contribution values; ``revenue`` in tokens, >= 0.

        Updates the price (demand) for the next round.
        """
        v = np.asarray(values, dtype=float)
        if v.ndim != 1 or not np.isfinite(v).all():
            raise IncentiveError(f"values must be a 1-d array of finite numbers, got {values!r}")
        if not 0 <= revenue < math.inf:
            raise IncentiveError(f"revenue must be a finite number >= 0, got {revenue}")
        budget = self.revenue_share * revenue
        positive = v > 0
        raw = np.where(positive, self.price * np.sqrt(np.clip(v, 0, None)), 0.0)
        if positive.any():
            floor = self.floor_share * raw[positive].mean()
            raw = np.where(positive, np.maximum(raw, floor), 0.0)
        total = raw.sum()
        rewards = raw * (budget / total) if total > budget and total > 0 else raw
        self._update_price(float(np.clip(v, 0, None).sum()))
        return rewards

    def round_total(self, gain: float, revenue: float) -> float:
        """A round's tokens for its total gain ``gain`` (>= 0), with ``B = revenue_share x
        revenue``: ``min(B, price x sqrt(gain))`` (``pool = "value"``: one concave price per
        round) or ``B if gain > 0 else 0`` (``pool = "revenue"``); either way how many
        identities share the gain does not change it (``incentives.gaming``). Updates the
        price like :meth:`pay`.

        Example:
            >>> RewardPolicy(revenue_share=0.1, pool="revenue").round_total(1e-4, revenue=500.0)
            50.0
        """
        if not 0 <= gain < math.inf:
            raise IncentiveError(f"gain must be a finite number >= 0, got {gain}")
        if not 0 <= revenue < math.inf:
            raise IncentiveError(f"revenue must be a finite number >= 0, got {revenue}")
        budget = self.revenue_share * revenue
        if self.pool == "revenue":
            total = budget if gain > 0 else 0.0
        else:
            total = min(budget, self.price * math.sqrt(gain))
        self._update_price(gain)
        return total

    def _update_price(self, gain: float) -> None:
        """Scarce value (gains below their recent average) raises the price, and vice versa."""
        if self._gain_ema is None:
            self._gain_ema = gain
            return
        ratio = (self._gain_ema + 1e-12) / (gain + 1e-12)
        self.price *= float(np.clip(ratio, 0.5, 2.0)) ** self.demand_rate
        self._gain_ema = (1 - self.demand_rate) * self._gain_ema + self.demand_rate * gain
