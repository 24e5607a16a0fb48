"""Pricing rules of the position mechanisms, applied to an already ranked auction.

Every rule sees the same ranked view (``Ranking``) and returns the per-click price of each slot.
The allocation is shared: rank eligible bidders by ``bid x quality``. Prices are the
thresholds a winner must reach to keep what it got, which makes ``second_price`` and ``vcg``
truthful for a bidder whose utility is ``(value - price) x slot CTR``:

- ``second_price`` (one slot): ``max(reserve, next score / own quality)``.
- ``gsp``: the same rule slot by slot (not truthful with several slots).
- ``vcg``: each winner pays the externality it imposes, i.e. for slot ``j`` the expected
  payment ``sum_{l >= j} (ctr_l - ctr_{l+1}) x max(reserve, score_{l+1} / q_j)`` (Myerson's
  threshold payment; equals the classic VCG payment when every quality is 1).
- ``first_price`` (one slot): the winner's own bid (the textbook non-truthful benchmark).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ._validation import AuctionError


@dataclass(frozen=True)
class Ranking:
    """Ranked view of ``A`` auctions with ``K`` slots.

    Attributes:
        filled: (A, K) bool, slot has a winner.
        next_scores: (A, K) float, score (bid x quality) of the bidder ranked just below each
            slot; 0 where there is none.
        win_bids: (A, K) float, winner's bid per click (0 where empty).
        win_quality: (A, K) float, winner's quality (1 where empty).
        reserve: (A,) float, per-click reserve.
        slot_ctrs: (K,) float.
    """

    filled: np.ndarray
    next_scores: np.ndarray
    win_bids: np.ndarray
    win_quality: np.ndarray
    reserve: np.ndarray
    slot_ctrs: np.ndarray

    def thresholds(self) -> np.ndarray:
        """(A, K) lowest per-click bid with which each winner still holds its slot."""
        return np.maximum(self.reserve[:, None], self.next_scores / self.win_quality)


PriceRule = Callable[[Ranking], np.ndarray]


def second_price(r: Ranking) -> np.ndarray:
    """Per-click price: the winner's threshold bid."""
    return np.where(r.filled, r.thresholds(), 0.0)


def first_price(r: Ranking) -> np.ndarray:
    """Per-click price: the winner's own bid."""
    return np.where(r.filled, r.win_bids, 0.0)


def vcg(r: Ranking) -> np.ndarray:
    """Per-click price: the winner's VCG externality divided by its slot CTR."""
    k = r.slot_ctrs.shape[0]
    ctr_filled = np.where(r.filled, r.slot_ctrs, 0.0)
    ctr_ext = np.concatenate([ctr_filled, np.zeros((ctr_filled.shape[0], 1))], axis=1)
    drops = ctr_ext[:, :-1] - ctr_ext[:, 1:]  # (A, K): CTR lost when falling below slot l
    # t[a, j, l]: per-click bid that winner j needs to stay at slot l or above.
    t = np.maximum(r.reserve[:, None, None], r.next_scores[:, None, :] / r.win_quality[:, :, None])
    later = np.triu(np.ones((k, k), dtype=bool))
    expected = np.einsum("ajl,al->aj", np.where(later, t, 0.0), drops)
    return np.where(r.filled, expected / r.slot_ctrs, 0.0)


@dataclass(frozen=True)
class Mechanism:
    """A named pricing rule; ``single_slot`` rules refuse several slots."""

    name: str
    price: PriceRule
    single_slot: bool
    truthful: bool


MECHANISMS: dict[str, Mechanism] = {
    m.name: m
    for m in (
        Mechanism("second_price", second_price, single_slot=True, truthful=True),
        Mechanism("gsp", second_price, single_slot=False, truthful=False),
        Mechanism("vcg", vcg, single_slot=False, truthful=True),
        Mechanism("first_price", first_price, single_slot=True, truthful=False),
    )
}


def get_mechanism(name: str) -> Mechanism:
    """Look up a mechanism by name; unknown names list the allowed ones."""
    try:
        return MECHANISMS[name]
    except (KeyError, TypeError):
        raise AuctionError(
            f"unknown mechanism {name!r}; allowed: {', '.join(sorted(MECHANISMS))}"
        ) from None
