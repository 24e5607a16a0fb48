"""Welfare accounting: revenue, advertiser surplus and social welfare of auction outcomes.

With per-click values ``v`` and expected clicks ``x`` (the CTR of the slot won, 0 for losers):
``utility_i = v_i x_i - payment_i``, ``revenue = sum payments``, ``social welfare = sum v_i x_i``,
so ``social welfare = revenue + sum utilities`` holds exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validation import AuctionError
from .outcome import AuctionOutcome, BatchOutcome


@dataclass(frozen=True)
class WelfareReport:
    """Totals over all auctions given, plus per-bidder utilities.

    Attributes:
        revenue: seller's expected revenue.
        advertiser_surplus: sum of bidder utilities.
        social_welfare: sum of value x expected clicks of the winners.
        utilities: (n,) float, each bidder's expected utility, summed over auctions.
    """

    revenue: float
    advertiser_surplus: float
    social_welfare: float
    utilities: np.ndarray


def expected_clicks(outcome: AuctionOutcome | BatchOutcome) -> np.ndarray:
    """Expected clicks per bidder: (n,) for one auction, (A, n) for a batch."""
    if isinstance(outcome, AuctionOutcome):
        clicks = np.zeros_like(outcome.payments)
        clicks[outcome.winners] = outcome.slot_ctrs
        return clicks
    clicks = np.zeros_like(outcome.payments)
    rows, slots = np.nonzero(outcome.winners >= 0)
    clicks[rows, outcome.winners[rows, slots]] = outcome.slot_ctrs[slots]
    return clicks


def welfare(outcome: AuctionOutcome | BatchOutcome, values: np.ndarray) -> WelfareReport:
    """Revenue, surplus and welfare of an outcome for the bidders' true per-click values.

    Args:
        outcome: one auction or a batch.
        values: (n,) or (A, n) float, true values per click.

    Example:
        >>> from auction import run_auction
        >>> welfare(run_auction([5.0, 8.0]), [5.0, 8.0]).social_welfare
        8.0
    """
    clicks = expected_clicks(outcome)
    v = np.asarray(values, dtype=np.float64)
    try:
        v = np.broadcast_to(v, clicks.shape)
    except ValueError:
        raise AuctionError(
            f"values must broadcast to the payments' shape {clicks.shape}, got {v.shape}"
        ) from None
    gross = v * clicks
    utilities = gross - outcome.payments
    per_bidder = utilities if utilities.ndim == 1 else utilities.sum(axis=0)
    return WelfareReport(
        revenue=float(outcome.payments.sum()),
        advertiser_surplus=float(utilities.sum()),
        social_welfare=float(gross.sum()),
        utilities=per_bidder,
    )
