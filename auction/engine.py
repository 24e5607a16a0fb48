"""Run auctions: the batched engine (many independent auctions at once) and the single call.

The single call is the batched engine on one row, so both give identical results, random
tie-breaking included: a batch draws ``rng.random((ties, n))`` for its tied rows in order,
which is what the same number of single calls with a tie would draw one after the other.
"""

from __future__ import annotations

import numpy as np

from ._validation import (
    AuctionError,
    as_bid_matrix,
    as_quality,
    as_reserve,
    as_rng,
    as_slot_ctrs,
)
from .mechanisms import Ranking, get_mechanism
from .outcome import AuctionOutcome, BatchOutcome

RngLike = np.random.Generator | int | np.random.SeedSequence | None


def _top_two(scores: np.ndarray) -> np.ndarray:
    """(A, 2) best and second-best score per row (equal when the best is tied).

    A sweep over the columns beats row-wise reductions on short rows by ~2x and allocates
    no (A, n) temporary.
    """
    best = scores[:, 0].copy()
    second = np.full(scores.shape[0], -np.inf)
    for j in range(1, scores.shape[1]):
        col = scores[:, j]
        np.maximum(second, np.minimum(best, col), out=second)
        np.maximum(best, col, out=best)
    return np.stack([best, second], axis=1)


def _rank(
    scores: np.ndarray, k: int, rng: RngLike, reserve: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Rank each row: winners (A, k) indices and top (A, k + 1) scores, best first.

    Empty ranks have score ``-inf``. With ``reserve`` given, ``scores`` are raw bids whose
    ineligible entries (below the reserve, or 0) are masked only here, after ranking: bids
    below the reserve rank below every eligible bid, so the order among eligible bids is
    unchanged and no masked (A, n) copy is needed. Ties that decide a slot (adjacent equal
    finite scores within the first k + 1 ranks) are re-ranked with random keys.
    """
    n = scores.shape[1]
    m = min(k + 1, n)
    if k == 1 and n > 2:
        top = _top_two(scores)
        winners = scores.argmax(axis=1)[:, None]
    else:
        if m == n:
            order = np.argsort(-scores, axis=1, kind="stable")
        else:
            part = np.argpartition(-scores, m - 1, axis=1)[:, :m]
            sub = np.take_along_axis(scores, part, axis=1)
            order = np.take_along_axis(part, np.argsort(-sub, axis=1, kind="stable"), axis=1)
        top = np.take_along_axis(scores, order, axis=1)
        winners = order[:, :k]
    if reserve is not None:
        top = np.where((top >= reserve[:, None]) & (top > 0), top, -np.inf)
    kk = min(k, m - 1)
    tied = ((top[:, :kk] == top[:, 1 : kk + 1]) & np.isfinite(top[:, :kk])).any(axis=1)
    if tied.any():
        rows = np.flatnonzero(tied)
        keys = as_rng(rng).random((rows.size, n))
        winners = winners.copy()
        winners[rows] = np.lexsort((keys, -scores[rows]), axis=1)[:, : winners.shape[1]]
    if m < k + 1:  # fewer bidders than slots + 1: pad with empty ranks
        top = np.pad(top, ((0, 0), (0, k + 1 - m)), constant_values=-np.inf)
        winners = np.pad(winners, ((0, 0), (0, k - winners.shape[1])), constant_values=0)
    return winners, top


def run_auctions(
    bids: np.ndarray,
    *,
    mechanism: str = "second_price",
    slot_ctrs: np.ndarray | None = None,
    reserve: float | np.ndarray = 0.0,
    quality: np.ndarray | None = None,
    rng: RngLike = None,
) -> BatchOutcome:
    """Run ``A`` independent auctions at once.

    Args:
        bids: (A, n) float, per-click bids; 0 means "no bid".
        mechanism: ``"second_price"`` | ``"gsp"`` | ``"vcg"`` | ``"first_price"``.
        slot_ctrs: (K,) float, non-increasing; ``None`` is one slot with CTR 1.
        reserve: scalar or (A,) float, per-click reserve; a bid below it does not take part.
        quality: (A, n) or (n,) float > 0, ranking weight (e.g. predicted CTR); default 1.
        rng: seed or Generator for tie-breaking (drawn from only when a tie decides a slot).

    Returns:
        BatchOutcome with winners (A, K) (-1 = empty slot), prices (A, K), payments (A, n).

    Example:
        >>> run_auctions([[3.0, 1.0, 2.0], [1.0, 5.0, 4.0]]).winners[:, 0].tolist()
        [0, 1]
    """
    mech = get_mechanism(mechanism)
    b = as_bid_matrix(bids)
    ctrs = as_slot_ctrs(slot_ctrs)
    k = ctrs.shape[0]
    if mech.single_slot and k > 1:
        raise AuctionError(
            f"mechanism {mechanism!r} has one slot but slot_ctrs has {k}; use 'gsp' or 'vcg'"
        )
    a, n = b.shape
    q = as_quality(quality, b.shape)
    res = as_reserve(reserve, a)

    if q is None:
        winners, top = _rank(b, k, rng, res)
    else:
        scores = b * q
        np.copyto(scores, -np.inf, where=(b < res[:, None]) | (b == 0))
        winners, top = _rank(scores, k, rng, None)

    filled = np.isfinite(top[:, :k])
    win_idx = np.where(filled, winners, 0)
    if q is None:
        win_bids, win_quality = np.where(filled, top[:, :k], 0.0), np.ones((a, k))
    else:
        rows = np.arange(a)[:, None]
        win_bids = np.where(filled, b[rows, win_idx], 0.0)
        win_quality = np.where(filled, q[rows, win_idx], 1.0)
    next_scores = top[:, 1 : k + 1]
    ranking = Ranking(
        filled=filled,
        next_scores=np.where(np.isfinite(next_scores), next_scores, 0.0),
        win_bids=win_bids,
        win_quality=win_quality,
        reserve=res,
        slot_ctrs=ctrs,
    )
    prices = mech.price(ranking)
    payments = np.zeros((a, n))
    rows, slots = np.nonzero(filled)
    payments[rows, win_idx[rows, slots]] = prices[rows, slots] * ctrs[slots]
    return BatchOutcome(
        winners=np.where(filled, win_idx, -1),
        prices=prices,
        payments=payments,
        slot_ctrs=ctrs,
    )


def run_auction(
    bids: np.ndarray,
    *,
    mechanism: str = "second_price",
    slot_ctrs: np.ndarray | None = None,
    reserve: float = 0.0,
    quality: np.ndarray | None = None,
    rng: RngLike = None,
) -> AuctionOutcome:
    """Run one auction.

    Args:
        bids: (n,) float, per-click bids; 0 means "no bid".
        mechanism: ``"second_price"`` | ``"gsp"`` | ``"vcg"`` | ``"first_price"``.
        slot_ctrs: (K,) float, non-increasing; ``None`` is one slot with CTR 1.
        reserve: per-click reserve; a bid below it does not take part, a sole eligible
            bidder wins and pays it.
        quality: (n,) float > 0, ranking weight; the ranking is by ``bid x quality``.
        rng: seed or Generator; ties are broken uniformly at random, never by index.

    Returns:
        AuctionOutcome with winners (k,), prices (k,) per click, payments (n,).

    Example:
        >>> out = run_auction([5.0, 8.0, 3.0])
        >>> out.winners.tolist(), out.prices.tolist()
        ([1], [5.0])
    """
    arr = np.asarray(bids, dtype=np.float64)
    if arr.ndim != 1:
        raise AuctionError(f"bids must be 1-D (one per bidder), got shape {arr.shape}")
    if np.ndim(reserve) != 0:
        raise AuctionError("reserve must be a scalar for a single auction")
    q = None if quality is None else np.asarray(quality, dtype=np.float64)
    if q is not None and q.shape != arr.shape:
        raise AuctionError(f"quality must have the bids' shape {arr.shape}, got {q.shape}")
    batch = run_auctions(
        arr[None, :],
        mechanism=mechanism,
        slot_ctrs=slot_ctrs,
        reserve=reserve,
        quality=None if q is None else q[None, :],
        rng=rng,
    )
    return batch[0]
