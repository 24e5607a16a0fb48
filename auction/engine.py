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
from .mechanisms import Mechanism, Ranking, get_mechanism
from .outcome import AuctionOutcome, BatchOutcome

RngLike = np.random.Generator | int | np.random.SeedSequence | None

# Values per block of the batched engine (4 MB of float64): keeps temporaries out of mmap.
_BLOCK_VALUES = 1 << 19


class _LazyRng:
    """Turns ``rng`` into a Generator on first use: most batches never meet a tie."""

    def __init__(self, rng: RngLike) -> None:
        self._rng = rng
        self._gen: np.random.Generator | None = None

    def random(self, shape: tuple[int, int]) -> np.ndarray:
        if self._gen is None:
            self._gen = as_rng(self._rng)
        return self._gen.random(shape)


# Rows up to this many bidders are ranked by a full sort / column sweep; longer rows by repeated
# argmax passes, which touch each row m times instead of sorting it (measured ~2x faster).
_SHORT_ROW = 16


def _top_order(scores: np.ndarray, m: int) -> np.ndarray:
    """(A, m) indices of the m best scores per row, best first (ties by index, fixed later)."""
    a, n = scores.shape
    if n <= _SHORT_ROW or m == n:
        return np.argsort(-scores, axis=1, kind="stable")[:, :m]
    work = scores.copy()
    rows = np.arange(a)
    order = np.empty((a, m), dtype=np.intp)
    for j in range(m):
        order[:, j] = work.argmax(axis=1)
        if j + 1 < m:
            work[rows, order[:, j]] = -np.inf
    return order


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
    scores: np.ndarray, k: int, draw: _LazyRng, reserve: np.ndarray | None
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
    if k == 1 and 2 < n <= _SHORT_ROW:
        top = _top_two(scores)
        winners = scores.argmax(axis=1)[:, None]
    else:
        order = _top_order(scores, m)
        top = np.take_along_axis(scores, order, axis=1)
        winners = order[:, :k]
    if reserve is not None:
        top = np.where((top >= reserve[:, None]) & (top > 0), top, -np.inf)
    kk = min(k, m - 1)
    tied = ((top[:, :kk] == top[:, 1 : kk + 1]) & np.isfinite(top[:, :kk])).any(axis=1)
    if tied.any():
        rows = np.flatnonzero(tied)
        keys = draw.random((rows.size, n))
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
    draw = _LazyRng(rng)

    winners = np.empty((a, k), dtype=np.intp)
    prices = np.empty((a, k))
    payments = np.zeros((a, n))
    # Blocks of a few MB: big temporaries would be fresh mmap'd pages on every call.
    step = max(1, _BLOCK_VALUES // n)
    for lo in range(0, a, step):
        hi = min(a, lo + step)
        _run_block(
            b[lo:hi],
            None if q is None else q[lo:hi],
            res[lo:hi],
            ctrs,
            mech,
            draw,
            out=(winners[lo:hi], prices[lo:hi], payments[lo:hi]),
        )
    return BatchOutcome(winners=winners, prices=prices, payments=payments, slot_ctrs=ctrs)


def _run_block(
    b: np.ndarray,
    q: np.ndarray | None,
    res: np.ndarray,
    ctrs: np.ndarray,
    mech: Mechanism,
    draw: _LazyRng,
    out: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    """Run the auctions of one block, writing winners, prices and payments into ``out``."""
    a, k = b.shape[0], ctrs.shape[0]
    if q is None:
        winners, top = _rank(b, k, draw, res)
    else:
        scores = b * q
        np.copyto(scores, -np.inf, where=(b < res[:, None]) | (b == 0))
        winners, top = _rank(scores, k, draw, None)

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
    out_winners, out_prices, out_payments = out
    out_prices[:] = mech.price(ranking)
    np.copyto(out_winners, np.where(filled, win_idx, -1))
    slot_pay = out_prices * ctrs
    rows = np.arange(a)
    for j in range(k):
        f = filled[:, j]
        if f.all():
            out_payments[rows, win_idx[:, j]] = slot_pay[:, j]
        else:
            out_payments[rows[f], win_idx[f, j]] = slot_pay[f, j]


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
