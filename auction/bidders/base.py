"""What every bidder shares: the ``Bidder`` protocol and a hard ``Budget``.

A bidder sees its per-click values for ``m`` auctions, returns ``m`` per-click bids, and later
learns what it won, paid and how many clicks it got. Its utility in an auction is
``value x clicks - payment`` (clicks: the slot CTR in expectation, or realised clicks).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Protocol, runtime_checkable

import numpy as np

from .._validation import AuctionError
from .throttle import Throttle

# Relative slack for float sums: a charge that overshoots the budget by less is rounding.
_BUDGET_RTOL = 1e-9


def as_values(values: object, name: str = "values") -> np.ndarray:
    """Return ``values`` as a (m,) float array of finite, non-negative per-click amounts."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise AuctionError(f"{name} must be 1-D (one per auction), got shape {arr.shape}")
    if not np.isfinite(arr).all() or (arr < 0).any():
        raise AuctionError(f"{name} must be finite and >= 0 (per-click amounts)")
    return arr


class Budget:
    """A hard spending limit: bids are capped at what is left and overspending is refused.

    Args:
        total: money available for the whole run, >= 0; ``math.inf`` means no limit.

    Example:
        >>> b = Budget(5.0)
        >>> b.charge(3.0)
        >>> b.cap(np.array([1.0, 4.0])).tolist()
        [1.0, 2.0]
    """

    def __init__(self, total: float = math.inf) -> None:
        total = float(total)
        if math.isnan(total) or total < 0:
            raise AuctionError(f"budget must be >= 0 (math.inf for none), got {total}")
        self.total = total
        self.spent = 0.0

    @property
    def remaining(self) -> float:
        """Money left to spend."""
        return self.total - self.spent

    def cap(self, bids: np.ndarray) -> np.ndarray:
        """Clip per-click bids at the remaining budget."""
        return np.minimum(bids, self.remaining)

    def charge(self, amount: float) -> None:
        """Record a charge; raise ``AuctionError`` if it would overspend."""
        if amount < 0 or math.isnan(amount):
            raise AuctionError(f"a charge must be >= 0, got {amount}")
        after = self.spent + amount
        if after > self.total + _BUDGET_RTOL * max(1.0, self.total):
            raise AuctionError(
                f"charge {amount:.6g} exceeds the remaining budget {self.remaining:.6g}; "
                "settle batches with run_budgeted_auctions so budgets are never overspent"
            )
        self.spent = min(after, self.total)


@runtime_checkable
class Bidder(Protocol):
    """Anything that bids per click and learns from feedback."""

    budget: Budget

    def bid(self, values: np.ndarray) -> np.ndarray:
        """(m,) per-click bids for (m,) per-click values."""
        ...

    def update(self, *, won: np.ndarray, payments: np.ndarray, clicks: np.ndarray) -> None:
        """Learn from the (m,) outcomes of the auctions last bid on: slot won, amount
        charged, clicks (expected or realised)."""
        ...


class BaseBidder(ABC):
    """Budget bookkeeping shared by the bidders here; subclasses supply ``_bids``.

    ``bid`` caps every bid at the batch's ``allowance`` (the remaining budget, or less under a
    ``Throttle``, which also picks the auctions the bidder enters: it bids 0 in the others);
    ``update`` charges the budget, tells the throttle what the batch cost and passes the
    entered auctions' payments and utilities to ``_learn`` (no learning by default).

    Args:
        budget: total budget, ``math.inf`` for none.
        throttle: budget pacing shared by every strategy (``None``: bid in every auction until
            the budget is gone).
    """

    def __init__(self, budget: float = math.inf, *, throttle: Throttle | None = None) -> None:
        self.budget = Budget(budget)
        self.throttle = throttle
        self.allowance = self.budget.remaining  # money the batch last bid on may cost
        self._values = np.empty(0)
        self._entered = np.empty(0, dtype=bool)

    def bid(self, values: np.ndarray) -> np.ndarray:
        """(m,) per-click bids, each at most the batch's ``allowance``; 0 where throttled."""
        self._values = as_values(values)
        m = self._values.shape[0]
        if self.throttle is None:
            self._entered, self.allowance = np.ones(m, dtype=bool), self.budget.remaining
        else:
            self._entered, self.allowance = self.throttle.plan(m, self.budget.remaining)
        bids = np.zeros(m)
        bids[self._entered] = self._bids(self._values[self._entered])
        return np.minimum(bids, self.allowance)

    def update(self, *, won: np.ndarray, payments: np.ndarray, clicks: np.ndarray) -> None:
        """Charge the budget and learn from the auctions last bid on.

        Args:
            won: (m,) bool, got a slot.
            payments: (m,) float >= 0, amount charged (expected or per realised click); in
                all at most the ``allowance``.
            clicks: (m,) float >= 0, expected clicks (the slot CTR) or realised clicks.
        """
        m = self._values.shape[0]
        arrays = [np.asarray(x, dtype=np.float64) for x in (won, payments, clicks)]
        if any(x.shape != (m,) for x in arrays):
            raise AuctionError(
                f"won, payments and clicks must each have shape ({m},) like the last bid, got "
                f"{[x.shape for x in arrays]}"
            )
        charged, got = arrays[1], arrays[2]
        if not np.isfinite(arrays[1:]).all() or (charged < 0).any() or (got < 0).any():
            raise AuctionError("payments and clicks must be finite and >= 0")
        total = float(charged.sum())
        if total > self.allowance + _BUDGET_RTOL * max(1.0, self.allowance):
            raise AuctionError(
                f"payments {total:.6g} exceed the batch's allowance {self.allowance:.6g}; "
                "settle batches with run_budgeted_auctions and budgets = each bidder's allowance"
            )
        self.budget.charge(total)
        if self.throttle is not None:
            self.throttle.observe(total)
        e = self._entered
        self._learn(charged[e], (self._values * got - charged)[e])

    @abstractmethod
    def _bids(self, values: np.ndarray) -> np.ndarray:
        """Uncapped (m,) bids for validated (m,) values."""

    def _learn(self, payments: np.ndarray, utilities: np.ndarray) -> None:
        """Adapt to (m,) payments and utilities ``value x clicks - payment``; static bidders
        ignore them."""
        del payments, utilities
