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
            slot; where there is none (or it is below the reserve), any value <= the reserve
            (0 or ``-inf``), since every rule takes ``max(reserve, ...)`` of it.
        win_bids: (A, K) float, winner's bid per click (any value where empty).
        win_quality: (A, K) float, winner's quality (any positive value where empty), or
            ``None`` when every quality is 1.
        reserve: (A,) float, per-click reserve.
        slot_ctrs: (K,) float.
    """

    filled: np.ndarray
    next_scores: np.ndarray
    win_bids: np.ndarray
    win_quality: np.ndarray | None
    reserve: np.ndarray
    slot_ctrs: np.ndarray

    def thresholds(self) -> np.ndarray:
        """(A, K) lowest per-click bid with which each winner still holds its slot.

        Capped at the winner's own bid: ``(b x q) / q`` can round one ulp above ``b``, and a
        price above the bid would break individual rationality.
        """
        nxt = self.next_scores if self.win_quality is None else self.next_scores / self.win_quality
        return np.minimum(np.maximum(self.reserve[:, None], nxt), self.win_bids)


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
    q = 1.0 if r.win_quality is None else r.win_quality[:, :, None]
    t = np.maximum(r.reserve[:, None, None], r.next_scores[:, None, :] / q)
    t = np.minimum(t, r.win_bids[:, :, None])  # individual rationality, as in thresholds()
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
