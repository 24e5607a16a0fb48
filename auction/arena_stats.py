"""Per-repetition outcomes of a learning study, and their mean with a 95% confidence interval.

From an ``ArenaLog`` (``auction.arena.run_arena``), per repetition, over the final window:

- ``bid_ratio``: mean bid / value (averaged over bidders); 1 is bidding the value.
- ``winning_bid``: the top-slot winner's bid / its value (unsold rounds skipped): the
  measure Banchio & Skrzypacz (2022) report; in first price it is the revenue / value, in
  second price the winner's bid, which learning pins down while the loser's bid (the price)
  it need not.
- ``revenue_ratio``: revenue / competitive revenue, the competitive benchmark being VCG at
  truthful bids (one slot: second price = the complete-information Nash revenue of first and
  second price; several slots: the lowest-revenue locally envy-free equilibrium of GSP,
  Edelman, Ostrovsky & Schwarz 2007).
- ``surplus``: the bidders' total utility per round.
- ``collusion_index``: ``(competitive - revenue) / (competitive - monopoly)``, the share of the
  competitive-to-monopoly revenue gap the seller lost (0 competitive, 1 full collusion, < 0
  above competitive), monopoly being everyone at the reserve (Calvano et al., 2020, use the
  same normalisation for prices).
- ``converged_at``: first round from which every later block's mean bid ratio stays within
  ``tol`` of the final block's (the run's end if it never settles).
- ``variation``, ``gap``, ``rotation_excess``: the cartel screens of ``auction.collusion``
  applied to the final window's bid log.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ._validation import AuctionError
from .arena import ArenaLog
from .collusion import screen_bid_log

# Normal quantile of a two-sided 95% interval: studies use R >= 30 repetitions, where the
# Student t quantile is within 5% of it (2.04 at R = 30).
_Z95 = 1.959963984540054


@dataclass(frozen=True)
class ArenaMetrics:
    """(R,) outcome per repetition (module docstring)."""

    bid_ratio: np.ndarray
    winning_bid: np.ndarray
    revenue_ratio: np.ndarray
    surplus: np.ndarray
    collusion_index: np.ndarray
    converged_at: np.ndarray
    variation: np.ndarray
    gap: np.ndarray
    rotation_excess: np.ndarray

    def summary(self) -> dict[str, dict[str, float]]:
        """``{metric: {"mean", "lo", "hi", "n"}}`` with 95% intervals over repetitions."""
        return {k: mean_ci(v) for k, v in asdict(self).items()}


def mean_ci(x: np.ndarray) -> dict[str, float]:
    """Mean and normal-approximation 95% confidence interval of the finite entries of ``x``.

    Example:
        >>> ci = mean_ci(np.array([1.0, 2.0, 3.0, 4.0]))
        >>> ci["mean"], round(ci["hi"] - ci["mean"], 4)
        (2.5, 1.2652)
    """
    v = np.asarray(x, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"mean": float("nan"), "lo": float("nan"), "hi": float("nan"), "n": 0}
    m = float(v.mean())
    half = _Z95 * float(v.std(ddof=1)) / float(np.sqrt(v.size)) if v.size > 1 else float("nan")
    return {"mean": m, "lo": m - half, "hi": m + half, "n": int(v.size)}


def window_mean(log: ArenaLog, blocks: np.ndarray) -> np.ndarray:
    """Round-weighted mean over the final window of per-block means ``blocks`` (B, R, ...).

    The window is the blocks that start inside the last ``log.config.last()`` rounds (the
    last block if none does), e.g. ``window_mean(log, log.utility)`` is each bidder's (R, n)
    converged utility per round.
    """
    end = np.cumsum(log.block_rounds)
    start = end - log.block_rounds
    inside = start >= log.config.rounds - log.config.last()
    tail = np.flatnonzero(inside) if inside.any() else np.array([len(end) - 1])
    w = log.block_rounds[tail].astype(float)
    return np.tensordot(w, np.asarray(blocks)[tail], axes=(0, 0)) / w.sum()


def converged_at(curve: np.ndarray, block_rounds: np.ndarray, tol: float) -> np.ndarray:
    """(R,) first round from which a (B, R) learning curve stays within ``tol`` of its end.

    Example:
        >>> converged_at(np.array([[0.0], [0.5], [0.95], [1.0]]), np.array([10] * 4), 0.1)
        array([20])
    """
    off = np.abs(curve - curve[-1]) > tol
    b = curve.shape[0]
    # Last block still off; everything after it is within tol.
    last_off = np.where(off.any(axis=0), b - 1 - np.argmax(off[::-1], axis=0), -1)
    starts = np.concatenate([[0], np.cumsum(block_rounds)])
    return starts[last_off + 1]


def winning_bid(log: ArenaLog) -> np.ndarray:
    """(R,) mean over the final window of the top-slot winner's bid / its value.

    Rounds without a sale or where the winner's value is 0 are skipped (NaN if none is left).

    Example:
        >>> from functools import partial
        >>> from auction import ArenaConfig, run_arena
        >>> from auction.bidders import StaticLearner
        >>> cfg = ArenaConfig(rounds=4, repetitions=1, values=[2.0, 1.0])
        >>> bidders = [partial(StaticLearner, factor=f) for f in (0.5, 0.8)]
        >>> winning_bid(run_arena(bidders, cfg)).tolist()  # 1.0 beats 0.8: 1.0 / 2.0
        [0.5]
    """
    won = log.winners >= 0
    who = np.where(won, log.winners, 0)[..., None]
    bid = np.take_along_axis(log.bids, who, axis=2)[..., 0]
    value = np.take_along_axis(log.values, who, axis=2)[..., 0]
    ok = won & (value > 0)
    ratio = np.divide(bid, value, out=np.zeros_like(bid), where=ok)
    with np.errstate(invalid="ignore", divide="ignore"):
        return ratio.sum(axis=0) / ok.sum(axis=0)


def arena_metrics(log: ArenaLog, *, tol: float = 0.05) -> ArenaMetrics:
    """Summarise a study per repetition (module docstring).

    Args:
        log: what ``run_arena`` recorded.
        tol: convergence tolerance on the mean bid / value.

    Returns:
        ArenaMetrics of (R,) arrays.
    """
    if not (np.isfinite(tol) and tol > 0):
        raise AuctionError(f"tol must be finite and > 0, got {tol}")

    def avg(x: np.ndarray) -> np.ndarray:
        return window_mean(log, x)

    revenue, competitive, monopoly = avg(log.revenue), avg(log.competitive), avg(log.monopoly)
    with np.errstate(invalid="ignore", divide="ignore"):
        revenue_ratio = revenue / competitive
        index = (competitive - revenue) / (competitive - monopoly)
        curve = np.nanmean(log.bid_ratio, axis=2)
    screens = [screen_bid_log(log.bids[:, r], log.winners[:, r]) for r in range(revenue.size)]
    return ArenaMetrics(
        bid_ratio=np.nanmean(avg(np.nan_to_num(log.bid_ratio, nan=0.0)), axis=1),
        winning_bid=winning_bid(log),
        revenue_ratio=revenue_ratio,
        surplus=avg(log.utility).sum(axis=1),
        collusion_index=np.where(competitive > monopoly, index, np.nan),
        converged_at=converged_at(np.nan_to_num(curve), log.block_rounds, tol),
        variation=np.array([s.variation for s in screens]),
        gap=np.array([s.gap for s in screens]),
        rotation_excess=np.array([s.rotation_excess for s in screens]),
    )
