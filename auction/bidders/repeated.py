"""Repeated auctions between stateful bidders: bid, settle under budgets, feed back, repeat."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from .._validation import AuctionError, as_rng, as_slot_ctrs
from .base import Bidder
from .budgeted import pay_per_click, per_bidder, run_budgeted_auctions


@dataclass(frozen=True)
class RepeatedHistory:
    """Per-round totals of a repeated-auction run.

    Attributes:
        utilities: (T, n) float, each bidder's ``value x clicks - charge`` summed per round.
        spend: (T, n) float, what each bidder was charged per round.
        revenue: (T,) float, seller's revenue per round.
    """

    utilities: np.ndarray
    spend: np.ndarray
    revenue: np.ndarray


def play_repeated(
    bidders: Sequence[Bidder],
    values: np.ndarray,
    *,
    clicks: Literal["expected", "sampled"] = "expected",
    rng: np.random.Generator | int | np.random.SeedSequence | None = None,
    **auction_kwargs: Any,
) -> RepeatedHistory:
    """Play ``T`` rounds of ``m`` auctions each; budgets hold by ``run_budgeted_auctions``.

    Args:
        bidders: n bidders, each with ``bid``, ``update`` and a ``budget``.
        values: (T, m, n) float, each bidder's per-click value per round and auction.
        clicks: ``"expected"`` charges and rewards the slot CTR in expectation; ``"sampled"``
            draws a click per filled slot with its CTR and charges per realised click.
        rng: seed or Generator for ties and click draws.
        **auction_kwargs: passed to ``run_auctions`` (mechanism, slot_ctrs, reserve, quality).

    Example:
        >>> from auction.bidders import TruthfulBidder
        >>> h = play_repeated([TruthfulBidder(), TruthfulBidder()], np.array([[[3.0, 1.0]]]))
        >>> h.utilities.tolist()
        [[2.0, 0.0]]
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 3 or v.shape[2] != len(bidders):
        raise AuctionError(
            f"values must have shape (rounds, auctions, {len(bidders)} bidders), got {v.shape}"
        )
    if clicks not in ("expected", "sampled"):
        raise AuctionError(f"clicks must be 'expected' or 'sampled', got {clicks!r}")
    tie_rng, click_rng = as_rng(rng).spawn(2)
    ctrs = as_slot_ctrs(auction_kwargs.get("slot_ctrs"))
    rounds, m, n = v.shape
    utilities, spend, revenue = np.zeros((rounds, n)), np.zeros((rounds, n)), np.zeros(rounds)
    for t in range(rounds):
        bids = np.column_stack([bidder.bid(v[t, :, i]) for i, bidder in enumerate(bidders)])
        if clicks == "expected":
            per_slot, charge = ctrs, None
        else:
            per_slot = (click_rng.random((m, ctrs.size)) < ctrs).astype(np.float64)
            charge = pay_per_click(per_slot)
        budgets = np.array([bidder.allowance for bidder in bidders])
        res = run_budgeted_auctions(bids, budgets, charge=charge, rng=tie_rng, **auction_kwargs)
        got = per_bidder(res.outcome, per_slot)
        won = per_bidder(res.outcome, 1.0) > 0
        for i, bidder in enumerate(bidders):
            bidder.update(won=won[:, i], payments=res.charges[:, i], clicks=got[:, i])
        utilities[t] = (v[t] * got - res.charges).sum(axis=0)
        spend[t] = res.spent
        revenue[t] = res.charges.sum()
    return RepeatedHistory(utilities=utilities, spend=spend, revenue=revenue)
