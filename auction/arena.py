"""Repeated auctions between learners: n bidders x T rounds x R independent repetitions.

Every round each repetition runs one auction (``auction.run_auctions``, one row per repetition)
between the ``n`` learners of that repetition; the learners then see their own outcome and,
depending on the feedback policy, more:

- ``"own"``: own outcome only (won, payment, clicks);
- ``"min_bid"``: also the minimum bid that would have won (the highest rival bid or the
  reserve; Google's disclosure after its 2019 switch to first price), which tells a bidder what
  every other bid would have earned (for GSP/VCG: every slot's threshold, i.e. the rivals'
  bids);
- ``"price"``: also the top slot's price, which reveals the minimum bid to win to whoever can
  infer it (losers in first price, the winner in second price / GSP).

Ties: ``"random"`` resolves equal bids uniformly at random from each repetition's own stream,
``"index"`` always in favour of the lower bidder index (a deterministic rule, as a design
choice to compare). Both are applied, in auctions with equal eligible bids only, as a ranking
weight ``quality = 1 + 1e-12 x key`` so the engine's random tie-break (one stream for the whole
batch) never couples repetitions; threshold prices in those auctions are exact up to a relative
1e-12, all others exactly.

Repetition ``r`` of a study uses only ``SeedSequence(seed, spawn_key=(r,))`` (values, ties and
each learner's draws spawn from it), so running repetitions ``0..R-1`` at once equals running
each alone (``first_repetition=r``, ``repetitions=1``).

A learner is built per study by a *factory* ``factory(seeds) -> learner`` given one
``SeedSequence`` per repetition (e.g. ``functools.partial(QLearner, decay=1e-4)``); the learner
needs only ``bid(values (R,)) -> (R,)`` and ``update(*, won, payments, clicks)``, and gets
``feedback=`` (an ``auction.bidders.Feedback``) when its ``update`` accepts that keyword. That
is the whole contract a new agent (a rule, a language-model bidder) has to meet.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from ._validation import AuctionError, as_slot_ctrs
from .bidders.learner import Feedback, Learner, LearnerFactory
from .bidders.streams import Streams, repetition_seeds
from .engine import run_auctions
from .outcome import BatchOutcome

ValueModel = np.ndarray | Callable[[np.ndarray], np.ndarray]
FEEDBACK = ("own", "min_bid", "price")
TIES = ("random", "index")
_TIE_WEIGHT = 1e-12


@dataclass(frozen=True)
class ArenaConfig:
    """One study: the auction, the information policy and the size.

    Attributes:
        rounds: T >= 1 auctions per repetition.
        repetitions: R >= 1 independent repetitions run at once.
        values: (n,) fixed per-click values, or ``quantile(u (R, n)) -> (R, n)`` mapping
            uniforms to values drawn afresh every round (e.g. ``lambda u: u`` for U(0, 1)).
        mechanism: ``"first_price"``, ``"second_price"``, ``"gsp"`` or ``"vcg"``.
        slot_ctrs: (K,) CTRs in (0, 1], non-increasing; ``None`` is one slot with CTR 1.
        reserve: per-click reserve price >= 0.
        feedback: ``"own"``, ``"min_bid"`` or ``"price"`` (module docstring).
        ties: ``"random"`` or ``"index"``.
        budgets: (n,) budget per bidder and repetition for the whole run; ``None``: no limit.
        misreport: (n,) factor by which each user scales the value it tells its own learner
            (Kolumbus & Nisan, 2022); ``None``: all 1 (truthful).
        window: last rounds over which converged quantities are averaged; default T // 10.
        blocks: number of equal blocks of rounds logged as means (the learning curves).
        seed: study seed; first_repetition: index of the first repetition run here.
    """

    rounds: int
    repetitions: int
    values: ValueModel
    mechanism: str = "first_price"
    slot_ctrs: np.ndarray | None = None
    reserve: float = 0.0
    feedback: Literal["own", "min_bid", "price"] = "own"
    ties: Literal["random", "index"] = "random"
    budgets: np.ndarray | None = None
    misreport: np.ndarray | None = None
    window: int | None = None
    blocks: int = 50
    seed: int = 0
    first_repetition: int = 0

    def last(self) -> int:
        """Rounds in the final window (>= 1)."""
        return max(1, self.rounds // 10) if self.window is None else self.window


@dataclass(frozen=True)
class ArenaLog:
    """What a study recorded. B = blocks, R = repetitions, n = bidders, W = final window.

    Attributes:
        block_rounds: (B,) rounds in each block (the last may be shorter).
        bid_ratio: (B, R, n) mean bid / true value per block (rounds with value 0 skipped).
        revenue: (B, R) mean revenue per round.
        utility: (B, R, n) mean true utility ``value x clicks - payment`` per round.
        competitive: (B, R) mean competitive revenue per round: VCG at truthful bids (second
            price with one slot), i.e. the Nash / lowest envy-free equilibrium benchmark.
        monopoly: (B, R) mean revenue if every bidder with value >= reserve bid the reserve.
        bids: (W, R, n) every bid of the final window (for the collusion screens).
        winners: (W, R) top-slot winner per round of the final window, -1 if unsold.
        values: (W, R, n) true values of the final window.
        config: the study.
    """

    block_rounds: np.ndarray
    bid_ratio: np.ndarray
    revenue: np.ndarray
    utility: np.ndarray
    competitive: np.ndarray
    monopoly: np.ndarray
    bids: np.ndarray
    winners: np.ndarray
    values: np.ndarray
    config: ArenaConfig = field(repr=False)


def _check(config: ArenaConfig, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate the study; return slot CTRs, budgets (n,) and misreport factors (n,)."""
    for name in ("rounds", "repetitions", "blocks"):
        x = getattr(config, name)
        if int(x) != x or x < 1:
            raise AuctionError(f"{name} must be an integer >= 1, got {x!r}")
    if config.feedback not in FEEDBACK:
        raise AuctionError(f"feedback must be one of {FEEDBACK}, got {config.feedback!r}")
    if config.ties not in TIES:
        raise AuctionError(f"ties must be one of {TIES}, got {config.ties!r}")
    if not (np.isfinite(config.reserve) and config.reserve >= 0):
        raise AuctionError(f"reserve must be finite and >= 0, got {config.reserve}")
    if not 1 <= config.last() <= config.rounds:
        raise AuctionError(f"window must be in [1, rounds={config.rounds}], got {config.window}")
    ctrs = as_slot_ctrs(config.slot_ctrs)
    if (ctrs > 1).any():
        raise AuctionError("slot_ctrs must be <= 1 (click probabilities)")
    budgets = np.full(n, np.inf) if config.budgets is None else np.asarray(config.budgets, float)
    misreport = np.ones(n) if config.misreport is None else np.asarray(config.misreport, float)
    for name, arr in (("budgets", budgets), ("misreport", misreport)):
        if arr.shape != (n,) or np.isnan(arr).any() or (arr < 0).any():
            raise AuctionError(f"{name} must be ({n},) values >= 0 (one per bidder), got {arr}")
    if not np.isfinite(misreport).all():
        raise AuctionError("misreport factors must be finite")
    return ctrs, budgets, misreport


class _Values:
    """Per-round (R, n) true values: fixed, or drawn from each repetition's stream."""

    def __init__(self, model: ValueModel, n: int, seeds: list[np.random.SeedSequence]) -> None:
        self._draw = None
        if callable(model):
            self._draw, self._streams = model, Streams(seeds, n)
            self._fixed = None
        else:
            v = np.asarray(model, dtype=np.float64)
            if v.shape != (n,) or not np.isfinite(v).all() or (v < 0).any():
                raise AuctionError(f"values must be ({n},) finite values >= 0 or a callable")
            self._fixed = np.broadcast_to(v, (len(seeds), n))
        self.shape = (len(seeds), n)

    def next(self) -> np.ndarray:
        if self._draw is None:
            return self._fixed
        v = np.asarray(self._draw(self._streams.next()), dtype=np.float64)
        if v.shape != self.shape or not np.isfinite(v).all() or (v < 0).any():
            raise AuctionError(f"the values callable must return {self.shape} finite values >= 0")
        return v


def _accepts_feedback(learner: Learner) -> bool:
    try:
        return "feedback" in inspect.signature(learner.update).parameters
    except (TypeError, ValueError):  # builtins without a signature: plain interface
        return False


def _clicks(out: BatchOutcome, n: int) -> np.ndarray:
    """(R, n) expected clicks: the CTR of the slot each bidder won, 0 for losers."""
    clicks = np.zeros((out.winners.shape[0], n))
    for j, ctr in enumerate(out.slot_ctrs):
        filled = np.flatnonzero(out.winners[:, j] >= 0)
        clicks[filled, out.winners[filled, j]] = ctr
    return clicks


def _benchmarks(v: np.ndarray, config: ArenaConfig, ctrs: np.ndarray) -> tuple[np.ndarray, ...]:
    """(R,) competitive (VCG at truthful bids) and monopoly (everyone at the reserve) revenue."""
    mech = "second_price" if ctrs.size == 1 else "vcg"
    comp = run_auctions(v, mechanism=mech, slot_ctrs=ctrs, reserve=config.reserve, rng=0).revenue
    eligible = (v >= config.reserve) & (v > 0)
    filled = np.minimum(eligible.sum(axis=1), ctrs.size)
    sold_ctr = np.concatenate([[0.0], np.cumsum(ctrs)])[filled]
    return comp, config.reserve * sold_ctr


class _Round:
    """One round's bids and outcome, and what each bidder may learn from it."""

    def __init__(
        self,
        bids: np.ndarray,
        keys: np.ndarray,
        out: BatchOutcome,
        config: ArenaConfig,
        ctrs: np.ndarray,
    ) -> None:
        self.bids, self.keys, self.out = bids, keys, out
        self.config, self.ctrs = config, ctrs

    def feedback(self, i: int, value: np.ndarray) -> Feedback:
        """What bidder ``i`` (believing its per-click value is ``value`` (R,)) is told."""
        cfg, out = self.config, self.out
        reps = self.bids.shape[0]
        nan = np.full(reps, np.nan)
        rivals = np.delete(self.bids, i, axis=1)
        top = rivals.max(axis=1) if rivals.shape[1] else np.zeros(reps)
        min_bid = np.maximum(top, cfg.reserve)
        sold = out.winners[:, 0] >= 0
        price = np.where(sold, out.prices[:, 0], np.nan)
        if cfg.feedback == "own":
            return Feedback(price=nan, min_bid=nan)
        if cfg.feedback == "min_bid":
            known = np.ones(reps, dtype=bool)
        elif self.ctrs.size > 1:
            return Feedback(price=price, min_bid=nan)
        elif cfg.mechanism == "first_price":
            known = sold & (out.winners[:, 0] != i)
        else:
            known = out.winners[:, 0] == i
        shown = np.where(known, min_bid, np.nan)
        if cfg.feedback == "price":
            known &= sold
        what_if = self._single if self.ctrs.size == 1 else self._multi
        return Feedback(
            price=price if cfg.feedback == "price" else nan,
            min_bid=shown,
            counterfactual=lambda c: np.where(known[:, None], what_if(c, i, value, top), np.nan),
        )

    def _single(self, c: np.ndarray, i: int, value: np.ndarray, top: np.ndarray) -> np.ndarray:
        """(R, K) expected utility of candidate bids ``c`` in a one-slot auction."""
        r = self.config.reserve
        rivals = np.delete(self.bids, i, axis=1)
        at_top = ((rivals == top[:, None]) & (rivals > 0) & (rivals >= r)).sum(axis=1)
        ok = (c > 0) & (c >= r)
        m = np.maximum(top, r)[:, None]
        share = np.where(c > m, 1.0, np.where(c == m, 1.0 / (1.0 + at_top[:, None]), 0.0)) * ok
        pay = c if self.config.mechanism == "first_price" else np.broadcast_to(m, c.shape)
        return share * (value[:, None] - pay) * self.ctrs[0]

    def _multi(self, c: np.ndarray, i: int, value: np.ndarray, top: np.ndarray) -> np.ndarray:
        """(R, K) utility of candidate bids ``c`` (GSP/VCG), re-running each auction."""
        del top
        reps, k = c.shape
        bids = np.repeat(self.bids, k, axis=0)
        bids[:, i] = c.ravel()
        out = run_auctions(
            bids,
            mechanism=self.config.mechanism,
            slot_ctrs=self.ctrs,
            reserve=self.config.reserve,
            # Candidates may tie a rival: weight every row, so no tie reaches the engine's rng.
            quality=np.repeat(1.0 + _TIE_WEIGHT * self.keys, k, axis=0),
            rng=0,
        )
        got = _clicks(out, bids.shape[1])[:, i]
        return (np.repeat(value, k) * got - out.payments[:, i]).reshape(reps, k)


def run_arena(bidders: Sequence[LearnerFactory], config: ArenaConfig) -> ArenaLog:
    """Play ``config.rounds`` rounds of ``config.repetitions`` independent repeated auctions.

    Args:
        bidders: n factories ``factory(seeds) -> learner`` (module docstring), n >= 1.
        config: the study (``ArenaConfig``).

    Returns:
        ArenaLog with block means, the final window's raw bids and winners; summarise it with
        ``auction.arena_metrics``.

    Example:
        >>> from functools import partial
        >>> from auction.bidders import StaticLearner
        >>> cfg = ArenaConfig(rounds=3, repetitions=2, values=[1.0, 0.5], mechanism="second_price")
        >>> log = run_arena([partial(StaticLearner, factor=1.0)] * 2, cfg)
        >>> log.revenue[-1].tolist(), log.competitive[-1].tolist()
        ([0.5, 0.5], [0.5, 0.5])
    """
    n = len(bidders)
    if n < 1:
        raise AuctionError("bidders must hold at least one learner factory")
    ctrs, budgets, misreport = _check(config, n)
    seeds = repetition_seeds(config.seed, config.repetitions, first=config.first_repetition)
    parts = [s.spawn(n + 2) for s in seeds]  # per repetition: values, ties, one per bidder
    values = _Values(config.values, n, [p[0] for p in parts])
    ties = Streams([p[1] for p in parts], n)
    learners = [f([p[2 + i] for p in parts]) for i, f in enumerate(bidders)]
    wants = [_accepts_feedback(x) for x in learners]
    rec = _Recorder(config, n)
    reps = config.repetitions
    remaining = np.broadcast_to(budgets, (reps, n)).copy()
    index_keys = np.broadcast_to(np.arange(n, 0, -1) / n, (reps, n))
    fixed = None if callable(config.values) else _benchmarks(values.next(), config, ctrs)
    for t in range(config.rounds):
        v = values.next()
        told = v * misreport
        bids = np.column_stack([_bid(x, told[:, i], reps, i) for i, x in enumerate(learners)])
        bids = np.minimum(bids, remaining)
        keys = ties.next() if config.ties == "random" else index_keys
        quality = np.where(_tied(bids, config.reserve)[:, None], 1.0 + _TIE_WEIGHT * keys, 1.0)
        out = run_auctions(
            bids,
            mechanism=config.mechanism,
            slot_ctrs=ctrs,
            reserve=config.reserve,
            quality=quality,
            rng=0,
        )
        clicks = _clicks(out, n)
        remaining -= out.payments
        rnd = _Round(bids, keys, out, config, ctrs)
        for i, learner in enumerate(learners):
            kw = {"feedback": rnd.feedback(i, told[:, i])} if wants[i] else {}
            learner.update(
                won=clicks[:, i] > 0, payments=out.payments[:, i], clicks=clicks[:, i], **kw
            )
        bench = fixed if fixed is not None else _benchmarks(v, config, ctrs)
        rec.add(t, v, bids, out, v * clicks - out.payments, bench)
    return rec.log()


def _tied(bids: np.ndarray, reserve: float) -> np.ndarray:
    """(R,) rows where two eligible bids are equal: only these get tie-breaking weights, so
    every other auction is priced exactly."""
    s = np.sort(np.where((bids > 0) & (bids >= reserve), bids, -np.arange(bids.shape[1])), axis=1)
    return (s[:, 1:] == s[:, :-1]).any(axis=1)


def _bid(learner: Learner, values: np.ndarray, reps: int, i: int) -> np.ndarray:
    b = np.asarray(learner.bid(values), dtype=np.float64)
    if b.shape != (reps,) or not np.isfinite(b).all() or (b < 0).any():
        raise AuctionError(f"bidder {i} must bid ({reps},) finite per-click amounts >= 0")
    return b


class _Recorder:
    """Accumulates block means and the final window's raw log."""

    def __init__(self, config: ArenaConfig, n: int) -> None:
        t, reps = config.rounds, config.repetitions
        b = min(config.blocks, t)
        self.edges = np.linspace(0, t, b + 1).round().astype(int)
        self.block_of = np.repeat(np.arange(b), np.diff(self.edges))
        self.config = config
        self.sums = {
            "bid_ratio": np.zeros((b, reps, n)),
            "ratio_count": np.zeros((b, reps, n)),
            "revenue": np.zeros((b, reps)),
            "utility": np.zeros((b, reps, n)),
            "competitive": np.zeros((b, reps)),
            "monopoly": np.zeros((b, reps)),
        }
        w = config.last()
        self.start = t - w
        self.bids = np.zeros((w, reps, n))
        self.winners = np.zeros((w, reps), dtype=np.intp)
        self.values = np.zeros((w, reps, n))

    def add(self, t, v, bids, out, utility, bench) -> None:
        s, k = self.sums, self.block_of[t]
        pos = v > 0
        s["bid_ratio"][k] += np.divide(bids, v, out=np.zeros_like(bids), where=pos)
        s["ratio_count"][k] += pos
        s["revenue"][k] += out.revenue
        s["utility"][k] += utility
        s["competitive"][k] += bench[0]
        s["monopoly"][k] += bench[1]
        if t >= self.start:
            self.bids[t - self.start] = bids
            self.winners[t - self.start] = out.winners[:, 0]
            self.values[t - self.start] = v

    def log(self) -> ArenaLog:
        s = self.sums
        size = np.diff(self.edges).astype(float)
        per = size[:, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = s["bid_ratio"] / s["ratio_count"]
        return ArenaLog(
            block_rounds=np.diff(self.edges),
            bid_ratio=ratio,
            revenue=s["revenue"] / per,
            utility=s["utility"] / per[:, :, None],
            competitive=s["competitive"] / per,
            monopoly=s["monopoly"] / per,
            bids=self.bids,
            winners=self.winners,
            values=self.values,
            config=self.config,
        )
