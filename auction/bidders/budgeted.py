"""Settle a batch of auctions in order without letting any bidder overspend its budget.

Rule: auctions are settled in row order. At the first auction where some bidders' cumulative
charge would exceed their budgets, each of those bidders leaves: it bids 0 in that auction and
every later one of the batch, and the auction is run again without it (so a bidder promoted by
the exclusion pays what it now owes, and may in turn leave). Auctions before that point are
final. Each pass removes at least one bidder, so at most ``n + 1`` passes run. Ties are broken
with one seed shared by all passes, so settled auctions never change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._validation import AuctionError, as_bid_matrix, as_rng
from ..engine import run_auctions
from ..outcome import BatchOutcome

Charge = Callable[[BatchOutcome], np.ndarray]


@dataclass(frozen=True)
class BudgetedOutcome:
    """A batch settled under budgets.

    Attributes:
        outcome: the final batch, leavers' bids set to 0 from the auction they left.
        charges: (A, n) float, what each bidder was charged per auction.
        left_at: (n,) int, auction from which each bidder sat out; ``A`` if it never left.
    """

    outcome: BatchOutcome
    charges: np.ndarray
    left_at: np.ndarray

    @property
    def spent(self) -> np.ndarray:
        """(n,) total charge per bidder over the batch."""
        return self.charges.sum(axis=0)


def per_bidder(outcome: BatchOutcome, per_slot: np.ndarray) -> np.ndarray:
    """Scatter a (A, K) per-slot quantity onto the slots' winners: (A, n), 0 for losers."""
    out = np.zeros_like(outcome.payments)
    rows, slots = np.nonzero(outcome.winners >= 0)
    out[rows, outcome.winners[rows, slots]] = np.broadcast_to(per_slot, outcome.prices.shape)[
        rows, slots
    ]
    return out


def pay_per_click(clicks: np.ndarray) -> Charge:
    """A ``charge`` that bills the per-click price for realised clicks only.

    Args:
        clicks: (A, K) 0/1 (or counts), clicks per auction and slot, drawn once beforehand
            (e.g. ``rng.random((A, K)) < slot_ctrs``) so every pass sees the same clicks.

    Example:
        >>> charge = pay_per_click(np.array([[0]]))
        >>> run_budgeted_auctions([[3.0, 1.0]], [5.0, 5.0], charge=charge).spent.tolist()
        [0.0, 0.0]
    """
    c = np.asarray(clicks, dtype=np.float64)
    if c.ndim != 2 or not np.isfinite(c).all() or (c < 0).any():
        raise AuctionError(
            f"clicks must be a (auctions, slots) array of counts >= 0, got shape {c.shape}"
        )

    def charge(outcome: BatchOutcome) -> np.ndarray:
        if c.shape != outcome.prices.shape:
            raise AuctionError(
                f"clicks must have shape (auctions, slots) = {outcome.prices.shape}, got {c.shape}"
            )
        return per_bidder(outcome, outcome.prices * c)

    return charge


def _expected_payments(outcome: BatchOutcome) -> np.ndarray:
    return outcome.payments


def _as_budgets(budgets: object, n: int) -> np.ndarray:
    arr = np.asarray(budgets, dtype=np.float64)
    if arr.shape != (n,):
        raise AuctionError(f"budgets must have one entry per bidder ({n},), got {arr.shape}")
    if np.isnan(arr).any() or (arr < 0).any():
        raise AuctionError("budgets must be >= 0 (math.inf for no limit)")
    return arr


def run_budgeted_auctions(
    bids: np.ndarray,
    budgets: np.ndarray,
    *,
    charge: Charge | None = None,
    rng: np.random.Generator | int | np.random.SeedSequence | None = None,
    **auction_kwargs: Any,
) -> BudgetedOutcome:
    """Run ``A`` auctions in order so that no bidder's total charge exceeds its budget.

    Args:
        bids: (A, n) float, per-click bids, auctions in the order they happen.
        budgets: (n,) float >= 0, money each bidder may spend over the batch (``inf``: no limit).
        charge: ``charge(outcome) -> (A, n)`` amounts billed; default the expected payments
            (price x slot CTR). Must be deterministic and bill only slot winners; see
            ``pay_per_click`` for billing realised clicks.
        rng: seed or Generator for tie-breaking.
        **auction_kwargs: passed to ``run_auctions`` (mechanism, slot_ctrs, reserve, quality).

    Returns:
        BudgetedOutcome; ``charges.sum(axis=0) <= budgets`` always holds.

    Example:
        >>> res = run_budgeted_auctions([[5.0, 3.0], [5.0, 3.0]], [3.0, 10.0])
        >>> res.left_at.tolist(), res.spent.tolist()
        ([1, 2], [3.0, 0.0])
    """
    b = as_bid_matrix(bids)
    a, n = b.shape
    limit = _as_budgets(budgets, n)
    bill = _expected_payments if charge is None else charge
    seed = int(as_rng(rng).integers(2**63))
    left_at = np.full(n, a)
    rows = np.arange(a)[:, None]
    while True:
        active = rows < left_at
        outcome = run_auctions(
            np.where(active, b, 0.0), rng=np.random.default_rng(seed), **auction_kwargs
        )
        charges = np.asarray(bill(outcome), dtype=np.float64)
        if charges.shape != (a, n) or not np.isfinite(charges).all() or (charges < 0).any():
            raise AuctionError(f"charge must return finite amounts >= 0 of shape {(a, n)}")
        if (charges[per_bidder(outcome, 1.0) == 0] != 0).any():
            raise AuctionError("charge billed a bidder in an auction where it won no slot")
        over = np.cumsum(charges, axis=0) > limit
        first = np.where(over.any(axis=0), over.argmax(axis=0), a)
        t = first.min()
        if t == a:
            return BudgetedOutcome(outcome=outcome, charges=charges, left_at=left_at)
        left_at[first == t] = t
