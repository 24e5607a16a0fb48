"""Run auctions: the batched engine (many independent auctions at once) and the single call.

The single call is the batched engine on one row, so both give identical results, random
tie-breaking included: a batch draws ``rng.random((ties, n))`` for its tied rows in order,
which is what the same number of single calls with a tie would draw one after the other.

Scores ``bid x quality`` are ranked in float64's normal range only: a product that overflows
(``1e308 x 10``) or underflows into subnormals (``0.9 x 5e-324``, where 0.9 and 1.0 round to
the same score) would rank wrongly or leave a slot empty. Ranking and thresholds depend only
on the ratios of qualities within an auction, so a block holding such a product gets each
auction's qualities rescaled by a power of two (exact); what still leaves the range raises
``AuctionError``.
"""

from __future__ import annotations

import numpy as np

from ._validation import (
    AuctionError,
    as_reserve,
    as_rng,
    as_slot_ctrs,
    bid_matrix_range,
    quality_range,
)
from .mechanisms import Mechanism, Ranking, get_mechanism
from .outcome import AuctionOutcome, BatchOutcome

RngLike = np.random.Generator | int | np.random.SeedSequence | None

# Values per block of the batched engine (512 KiB of float64): the block and its temporaries
# stay in a core's L2 (the single-slot sweep reads every column of a block), and out of mmap.
# Measured on the 2-core machine (2 MiB L2 per core): 4 MiB blocks ran 10 x 1 at 9.7M
# auctions/s, 512 KiB and 1 MiB blocks at 15.6M/s (benchmarks/auction_throughput.py).
_BLOCK_VALUES = 1 << 16
_TINY = np.finfo(np.float64).tiny  # smallest normal float64: below it precision is lost
_HUGE = float(np.finfo(np.float64).max)


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
        # Ascending sort read backwards: no negated copy, and numpy's default (SIMD) argsort
        # beats the stable one ~3x. Tied entries come out in any order; the ties that decide
        # a slot are re-ranked at random by the caller anyway.
        return np.argsort(scores, axis=1)[:, : -m - 1 : -1]
    work = scores.copy()
    rows = np.arange(a)
    order = np.empty((a, m), dtype=np.intp)
    for j in range(m):
        order[:, j] = work.argmax(axis=1)
        if j + 1 < m:
            work[rows, order[:, j]] = -np.inf
    return order


def _top_two(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index of the best score per row, the best and the second-best score, each (A,).

    The second-best equals the best when the best is tied; it is ``-inf`` with one bidder.
    Short rows: a sweep over the columns beats row-wise reductions by ~2x and allocates no
    (A, n) float temporary; the winner is then the first column equal to the best, found on a
    boolean mask (cheaper than a float ``argmax`` on short rows). Long rows: two ``argmax``
    passes, the second on a copy with the winner masked out.
    """
    a, n = scores.shape
    if a == 1 and n > 1:  # one auction (a device's own): 1-D calls, fewest numpy dispatches
        row = scores[0]
        w = int(row.argmax())
        rest = row.copy()
        rest[w] = -np.inf
        return np.array([w]), row[w : w + 1].copy(), np.array([rest.max()])
    if n > _SHORT_ROW:
        flat = np.arange(a) * n
        win = scores.argmax(axis=1)
        work = scores.copy().reshape(-1)
        best = work[flat + win]
        work[flat + win] = -np.inf
        work = work.reshape(a, n)
        second = work.reshape(-1)[flat + work.argmax(axis=1)]
        return win, best, second
    best = scores[:, 0].copy()
    second = np.full(a, -np.inf)
    low = np.empty(a)
    for j in range(1, n):
        col = scores[:, j]
        np.maximum(second, np.minimum(best, col, out=low), out=second)
        np.maximum(best, col, out=best)
    win = (scores == best[:, None]).argmax(axis=1) if n > 1 else np.zeros(a, dtype=np.intp)
    return win, best, second


def _break_ties(
    scores: np.ndarray, winners: np.ndarray, tied: np.ndarray, draw: _LazyRng
) -> np.ndarray:
    """Re-rank the ``tied`` rows of ``winners`` (A, k) by score, ties by fresh random keys."""
    rows = np.flatnonzero(tied)
    keys = draw.random((rows.size, scores.shape[1]))
    winners = winners.copy()
    winners[rows] = np.lexsort((keys, -scores[rows]), axis=1)[:, : winners.shape[1]]
    return winners


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
    order = _top_order(scores, m)
    top = np.take_along_axis(scores, order, axis=1)
    winners = order[:, :k]
    if reserve is not None:
        top = np.where((top >= reserve[:, None]) & (top > 0), top, -np.inf)
    kk = min(k, m - 1)
    tied = ((top[:, :kk] == top[:, 1 : kk + 1]) & np.isfinite(top[:, :kk])).any(axis=1)
    if tied.any():
        winners = _break_ties(scores, winners, tied, draw)
    if m < k + 1:  # fewer bidders than slots + 1: pad with empty ranks
        top = np.pad(top, ((0, 0), (0, k + 1 - m)), constant_values=-np.inf)
        winners = np.pad(winners, ((0, 0), (0, k - winners.shape[1])), constant_values=0)
    return winners, top


def _ranges_ok(scores: np.ndarray, ineligible: np.ndarray) -> bool:
    """True when every eligible score is a normal float64 (no overflow, no lost precision).

    Leaves ``scores`` with ``+inf`` at ineligible entries (the caller masks them again).
    """
    hi = scores.max()
    np.copyto(scores, np.inf, where=ineligible)
    return bool(hi < np.inf and scores.min() >= _TINY)


def _quality_scores(
    b: np.ndarray, q: np.ndarray, res: np.ndarray, normal: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Scores ``b x q`` (A, n) with ineligible entries ``-inf``, and the quality they used.

    ``normal``: the batch's ranges already show every eligible product in float64's normal
    range (see ``run_auctions``). Otherwise auctions whose products leave the normal range
    are redone with each auction's qualities divided by a power of two near their maximum
    (exact, and prices depend only on quality ratios); if that still fails the bids and
    qualities cannot be ranked in float64.
    """
    if normal:  # no checks, no errstate
        scores = b * q
        np.copyto(scores, -np.inf, where=b < res[:, None])
        return scores, q
    ineligible = (b < res[:, None]) | (b == 0)
    with np.errstate(over="ignore", under="ignore"):  # detected below, not warned about
        scores = b * q
        in_range = _ranges_ok(scores, ineligible)
        if not in_range:
            _, exponent = np.frexp(q.max(axis=1, keepdims=True))
            q = np.ldexp(q, -exponent)
            scores = np.multiply(b, q, out=scores)
            in_range = q.min() >= _TINY and _ranges_ok(scores, ineligible)
        if not in_range:
            raise AuctionError(
                "bid x quality leaves float64's normal range even with each auction's "
                "qualities rescaled to a maximum of 1: allowed are qualities within a factor "
                f"2**1000 of each other in one auction and bid x quality / max quality in "
                f"[{_TINY:.3g}, {np.finfo(np.float64).max:.3g}] for every eligible bid"
            )
    np.copyto(scores, -np.inf, where=ineligible)
    return scores, q


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

    Raises:
        AuctionError: bad shapes or values (named), or ``bid x quality`` that cannot be ranked
            in float64 even after rescaling each auction's qualities.

    Example:
        >>> run_auctions([[3.0, 1.0, 2.0], [1.0, 5.0, 4.0]]).winners[:, 0].tolist()
        [0, 1]
    """
    mech = get_mechanism(mechanism)
    b, (_, b_hi) = bid_matrix_range(bids)
    ctrs = as_slot_ctrs(slot_ctrs)
    k = ctrs.shape[0]
    if mech.single_slot and k > 1:
        raise AuctionError(
            f"mechanism {mechanism!r} has one slot but slot_ctrs has {k}; use 'gsp' or 'vcg'"
        )
    a, n = b.shape
    q, (q_lo, q_hi) = quality_range(quality, b.shape)
    res = as_reserve(reserve, a)
    res_lo = float(reserve) if type(reserve) in (float, int) else float(res.min()) if a else 0.0
    # every eligible bid is >= the smallest reserve (> 0 here), so every eligible product is
    # within [res_lo x min q, max b x max q]: in float64's normal range when these are
    normal = res_lo > 0 and res_lo * q_lo >= _TINY and b_hi * q_hi < _HUGE
    draw = _LazyRng(rng)

    winners = np.empty((a, k), dtype=np.intp)
    prices = np.empty((a, k))
    payments = np.zeros((a, n))
    # Blocks in L2: big temporaries would also be fresh mmap'd pages on every call.
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
            normal,
            out=(winners[lo:hi], prices[lo:hi], payments[lo:hi]),
        )
    return BatchOutcome(winners=winners, prices=prices, payments=payments, slot_ctrs=ctrs)


def _write_payments(payments: np.ndarray, flat: np.ndarray, slot_pay: np.ndarray) -> None:
    """Scatter (A, k) per-slot payments into ``payments`` (A, n) at the winners' flat
    indices ``flat`` (A, k) (``row x n + winner``).

    Empty slots carry payment 0 and any valid index, and filled slots are a prefix of each
    row, so writing the slots bottom up lets every filled slot overwrite what an empty one
    wrote: no mask needed. Flat indices are ~2x faster than a (rows, cols) fancy index.
    """
    out = payments.reshape(-1)  # the rows of a block are contiguous: this is a view
    for j in range(flat.shape[1] - 1, -1, -1):
        out[flat[:, j]] = slot_pay[:, j]


def _gather(x: np.ndarray, flat: np.ndarray, winners: np.ndarray) -> np.ndarray:
    """``x`` (A, n) at the winners: flat indices on a contiguous array, the one row of a
    broadcast (n,) one (``take_along_axis`` costs microseconds per call; a reshape of a
    broadcast array would copy A x n)."""
    if x.strides[0] == 0:
        return x[0][winners]
    return x.reshape(-1)[flat] if x.flags.c_contiguous else np.take_along_axis(x, winners, 1)


def _single_slot(
    scores: np.ndarray, draw: _LazyRng, reserve: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One slot: a top-two sweep instead of a ranking; the same results as ``_rank``.

    Returns winners (A, 1), filled (A, 1) and the next score (A, 1), ``-inf`` or at most the
    reserve where there is none. ``reserve`` as in ``_rank`` (raw bids, masked here).
    """
    win, best, second = _top_two(scores)
    filled = best > -np.inf if reserve is None else (best >= reserve) & (best > 0)
    tied = (best == second) & filled
    if tied.any():
        return _break_ties(scores, win[:, None], tied, draw), filled[:, None], second[:, None]
    return win[:, None], filled[:, None], second[:, None]


def _run_block(
    b: np.ndarray,
    q: np.ndarray | None,
    res: np.ndarray,
    ctrs: np.ndarray,
    mech: Mechanism,
    draw: _LazyRng,
    normal: bool,
    out: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    """Run the auctions of one block, writing winners, prices and payments into ``out``
    (``normal`` as in :func:`_quality_scores`)."""
    (a, n), k = b.shape, ctrs.shape[0]
    if q is None:  # raw bids are the scores; the reserve is masked after ranking
        scores, masked = b, res
    else:
        (scores, q), masked = _quality_scores(b, q, res, normal), None
    if k == 1:
        winners, filled, next_scores = _single_slot(scores, draw, masked)
    else:
        winners, top = _rank(scores, k, draw, masked)
        filled, next_scores = np.isfinite(top[:, :k]), top[:, 1 : k + 1]
    # Unfilled slots keep some valid index: their price is masked to 0 by every rule.
    flat = (np.arange(a) * n)[:, None] + winners
    ranking = Ranking(
        filled=filled,
        next_scores=next_scores,
        win_bids=_gather(b, flat, winners),
        win_quality=None if q is None else _gather(q, flat, winners),
        reserve=res,
        slot_ctrs=ctrs,
    )
    out_winners, out_prices, out_payments = out
    out_prices[:] = mech.price(ranking)
    np.copyto(out_winners, np.where(filled, winners, -1))
    _write_payments(out_payments, flat, out_prices * ctrs)


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
