"""Result types of one auction and of a batch of independent auctions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AuctionOutcome:
    """Outcome of one auction.

    Attributes:
        winners: (k,) int, bidder index per filled slot, top slot first.
        prices: (k,) float, per-click price per filled slot.
        payments: (n,) float, each bidder's expected total payment
            (per-click price x slot CTR); 0 for losers.
        slot_ctrs: (k,) float, CTR of each filled slot.
    """

    winners: np.ndarray
    prices: np.ndarray
    payments: np.ndarray
    slot_ctrs: np.ndarray

    @property
    def revenue(self) -> float:
        """Seller's expected revenue: sum of payments."""
        return float(self.payments.sum())


@dataclass(frozen=True)
class BatchOutcome:
    """Outcomes of ``A`` independent auctions over the same ``n`` bidders and ``K`` slots.

    Attributes:
        winners: (A, K) int, bidder per slot, ``-1`` where a slot stays empty.
        prices: (A, K) float, per-click price per slot, 0 where empty.
        payments: (A, n) float, expected payment per bidder and auction.
        slot_ctrs: (K,) float.
    """

    winners: np.ndarray
    prices: np.ndarray
    payments: np.ndarray
    slot_ctrs: np.ndarray

    def __len__(self) -> int:
        return self.winners.shape[0]

    def __getitem__(self, i: int) -> AuctionOutcome:
        filled = self.winners[i] >= 0
        if filled.all():  # every slot filled: views, no boolean gathers
            return AuctionOutcome(
                winners=self.winners[i],
                prices=self.prices[i],
                payments=self.payments[i],
                slot_ctrs=self.slot_ctrs,
            )
        return AuctionOutcome(
            winners=self.winners[i][filled],
            prices=self.prices[i][filled],
            payments=self.payments[i],
            slot_ctrs=self.slot_ctrs[filled],
        )

    @property
    def revenue(self) -> np.ndarray:
        """(A,) float, expected revenue of each auction."""
        return self.payments.sum(axis=1)
