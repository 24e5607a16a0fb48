"""Token rewards for contributions: a revenue-funded budget, diminishing returns, a floor.

Each round ``budget = revenue_share x auction revenue``. A participant with value ``v > 0``
gets a raw reward ``price x sqrt(v)`` (concave: doubling the value does not double the pay),
newcomers and small contributors are lifted to ``floor_share`` of the mean positive reward so
wealth does not concentrate, and the rewards are scaled down if they exceed the budget (what is
not paid stays in the treasury). Zero
or negative value earns nothing. The price per unit of value follows demand: it rises when the
model's recent gains are small (value is scarce) and falls when they are large.

Example:
    >>> policy = RewardPolicy(revenue_share=0.1)
    >>> policy.pay(np.array([0.04, 0.01, 0.0, -0.2]), revenue=100.0).round(3).tolist()
    [0.2, 0.1, 0.0, 0.0]
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._errors import IncentiveError


def gini(x: np.ndarray) -> float:
    """Gini coefficient of non-negative amounts (0 = equal, -> 1 = one holds everything)."""
    a = np.sort(np.asarray(x, dtype=float))
    if (a < 0).any():
        raise IncentiveError("gini needs non-negative amounts")
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
    """

    revenue_share: float = 0.1
    floor_share: float = 0.25
    price: float = 1.0
    demand_rate: float = 0.2
    _gain_ema: float | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if not 0 <= self.revenue_share <= 1:
            raise IncentiveError(f"revenue_share must be in [0, 1], got {self.revenue_share}")
        if not 0 <= self.floor_share <= 1:
            raise IncentiveError(f"floor_share must be in [0, 1], got {self.floor_share}")
        if not 0 <= self.demand_rate <= 1 or self.price <= 0:
            raise IncentiveError("demand_rate must be in [0, 1] and price > 0")

    def pay(self, values: np.ndarray, revenue: float) -> np.ndarray:
        """(n,) tokens for this round's (n,) contribution values."""
        v = np.asarray(values, dtype=float)
        if not np.isfinite(v).all() or revenue < 0:
            raise IncentiveError("values must be finite and revenue >= 0")
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

    def _update_price(self, gain: float) -> None:
        """Scarce value (gains below their recent average) raises the price, and vice versa."""
        if self._gain_ema is None:
            self._gain_ema = gain
            return
        ratio = (self._gain_ema + 1e-12) / (gain + 1e-12)
        self.price *= float(np.clip(ratio, 0.5, 2.0)) ** self.demand_rate
        self._gain_ema = (1 - self.demand_rate) * self._gain_ema + self.demand_rate * gain
