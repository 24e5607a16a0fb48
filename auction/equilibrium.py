"""GSP's lowest-revenue locally envy-free equilibrium (Edelman, Ostrovsky & Schwarz, 2007).

GSP is not truthful: at truthful bids its revenue overstates what bidders would pay in
equilibrium. The benchmark equilibrium of EOS (2007, Theorem 2; Varian, 2007, the
symmetric Nash equilibrium's lower end) has the bidders ranked by value and the bidder in
slot ``i`` paying per click VCG's price at truthful bids:

    p_i = (1 / a_i) * sum_{j=i..K} (a_j - a_{j+1}) * max(v_(j+1), r)

with ``a_1 >= ... >= a_K`` the slot CTRs, ``a_{K+1} = 0``, ``v_(j)`` the j-th highest value
(0 beyond the bidders) and ``r`` the reserve (Edelman & Schwarz, 2010: with a reserve the
seller acts as bidders at ``r``). The bids that give it in GSP: the top bidder bids its
value, the bidder ranked ``i`` in 2..K (when it takes a slot) bids ``p_(i-1)``, the others
bid their values. GSP at these bids then charges slot ``i`` the next bid, ``p_i``, so its
revenue equals VCG's at truthful bids, and no bidder envies the slot above at its price.

Equal slot weights only (quality 1): a quality-weighted GSP ranks by ``bid x quality`` and
its equilibrium prices are these divided by quality ratios, which this module does not
compute.

Example:
    >>> gsp_envy_free_bids([[10.0, 4.0, 2.0]], [1.0, 0.5]).tolist()
    [[10.0, 3.0, 2.0]]

References:
    Edelman, Ostrovsky, Schwarz (2007), "Internet advertising and the generalized
    second-price auction", American Economic Review 97(1). Edelman, Schwarz (2010),
    "Optimal auction design and equilibrium selection in sponsored search auctions".
"""

from __future__ import annotations

import numpy as np

from ._validation import AuctionError, as_bid_matrix, as_slot_ctrs


def vcg_slot_prices(values: object, slot_ctrs: object, reserve: float = 0.0) -> np.ndarray:
    """VCG's per-click price of each slot at truthful bids, slots top first.

    Args:
        values: (A, n) per-click values, finite and >= 0 (0: no bid).
        slot_ctrs: (K,) non-increasing CTRs in (0, 1].
        reserve: per-click reserve, >= 0 and finite.

    Returns:
        (A, K) float: ``p_i`` of the module docstring where slot ``i`` is filled (the i-th
        highest value is > 0 and >= ``reserve``), 0 where it stays empty.

    Example:
        >>> vcg_slot_prices([[10.0, 4.0, 2.0]], [1.0, 0.5], reserve=2.5).tolist()
        [[3.25, 2.5]]
    """
    v = as_bid_matrix(values)
    a = as_slot_ctrs(slot_ctrs)
    if not (np.isfinite(reserve) and reserve >= 0):
        raise AuctionError(f"reserve must be finite and >= 0, got {reserve!r}")
    rows, n = v.shape
    k = a.size
    ranked = -np.sort(-v, axis=1)  # (A, n) values, highest first
    padded = np.zeros((rows, k + 1))
    m = min(n, k + 1)
    padded[:, :m] = ranked[:, :m]
    nxt = np.maximum(padded[:, 1:], reserve)  # (A, K): max(v_(i+1), r) for slot i
    weights = a - np.append(a[1:], 0.0)  # (K,) a_i - a_{i+1}
    # sum_{j >= i} (a_j - a_{j+1}) w_(j+1): a reversed cumulative sum over slots
    tail = np.cumsum((weights * nxt)[:, ::-1], axis=1)[:, ::-1]
    # p_i >= r exactly, but the sum can round one ulp below it, and a bid one ulp below
    # the reserve would lose its slot
    prices = np.maximum(tail / a, reserve)
    filled = (padded[:, :k] > 0) & (padded[:, :k] >= reserve)
    return np.where(filled, prices, 0.0)


def gsp_envy_free_bids(values: object, slot_ctrs: object, reserve: float = 0.0) -> np.ndarray:
    """Bids at which GSP gives the lowest-revenue locally envy-free equilibrium.

    Args:
        values: (A, n) per-click values, finite and >= 0.
        slot_ctrs: (K,) non-increasing CTRs in (0, 1].
        reserve: per-click reserve, >= 0.

    Returns:
        (A, n) float bids: values, except that the bidder ranked ``i`` in 2..K (by value,
        ties by index) bids VCG's price of slot ``i - 1`` when it takes a slot (a price of
        0 as the smallest positive float: 0 is no bid). Where equal CTRs make neighbours'
        prices equal, the higher-ranked bid is raised by one ulp so GSP keeps value order.

    Raises:
        AuctionError: bad shapes or values, naming the argument.

    Example:
        >>> gsp_envy_free_bids([[2.0, 10.0, 4.0]], [1.0, 0.5], reserve=2.5).tolist()
        [[2.0, 10.0, 3.25]]
    """
    v = as_bid_matrix(values)
    prices = vcg_slot_prices(v, slot_ctrs, reserve)  # (A, K)
    n = v.shape[1]
    order = np.argsort(-v, axis=1, kind="stable")  # (A, n) bidder by rank
    ranked = np.take_along_axis(v, order, axis=1)
    bids = v.copy()
    for rank in range(1, min(prices.shape[1], n)):  # ranks 2..K (0-based 1..K-1)
        who = order[:, rank]
        r = np.nonzero((ranked[:, rank] > 0) & (ranked[:, rank] >= reserve))[0]
        # a bid of 0 is no bid: a zero price (equal CTRs, nothing below) is bid as the
        # smallest positive float, which GSP charges as ~0
        bids[r, who[r]] = np.maximum(prices[r, rank - 1], np.nextafter(0.0, 1.0))
    # Equal CTRs give equal prices, so neighbours can bid the same and GSP's random tie
    # break could swap them out of value order. Bottom up, each slot-taking bidder bids at
    # least one ulp above the bidder ranked next, which moves a price by at most an ulp.
    rows = np.arange(v.shape[0])
    for rank in range(min(prices.shape[1], n - 1) - 1, -1, -1):
        who, below = order[:, rank], order[:, rank + 1]
        takes = (ranked[:, rank] > 0) & (ranked[:, rank] >= reserve)
        floor = np.where(bids[rows, below] > 0, np.nextafter(bids[rows, below], np.inf), 0.0)
        bids[rows, who] = np.where(takes, np.maximum(bids[rows, who], floor), bids[rows, who])
    return bids
