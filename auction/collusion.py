"""Bidding rings: simulate one, screen bid logs for one, and measure what it takes.

A ring (cartel) picks one member per auction to bid; the others stay out or submit cover bids
below it, so the designated member faces less competition (Graham & Marshall, 1987,
"Collusive bidder behavior at single-object second-price and English auctions", JPE 95(6);
McAfee & McMillan, 1992, "Bidding rings", AER 82(3)). A reserve price limits how far the
price can fall, which is why it is the seller's classic defence (Graham & Marshall, 1987).

The screens are the standard statistical markers of bid rigging (OECD, 2009, *Guidelines for
Fighting Bid Rigging in Public Procurement*): little variation among bids, a large gap between
the winning and the second bid, and winners taking turns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ._validation import AuctionError, as_bid_matrix, as_rng
from .engine import run_auctions
from .welfare import welfare


def _as_ring(ring: Sequence[int], n: int) -> np.ndarray:
    r = np.asarray(ring, dtype=np.intp)
    if r.ndim != 1 or r.size < 2 or np.unique(r).size != r.size or r.min() < 0 or r.max() >= n:
        raise AuctionError(f"ring must be >= 2 distinct bidder indices in [0, {n}), got {ring}")
    return r


def ring_bids(
    bids: np.ndarray,
    ring: Sequence[int],
    *,
    designated: Literal["highest", "rotate"] = "highest",
    cover: float = 0.0,
) -> np.ndarray:
    """Rewrite the ring members' bids: one designated member bids, the others cover or stay out.

    Args:
        bids: (A, n) float, the bids everyone would make without the ring.
        ring: member indices (at least two).
        designated: ``"highest"``: the member with the highest bid (the first such member on
            a tie), so the ring keeps the efficient winner; ``"rotate"``: members take turns,
            ``ring[a % len(ring)]`` in auction ``a`` (bid rotation).
        cover: in [0, 1); the other members bid ``cover x`` the designated bid (0: they stay
            out; > 0: cover bids that look like competition but never beat the designated one).

    Returns:
        (A, n) float, the collusive bids (outsiders unchanged).

    Example:
        >>> ring_bids([[10.0, 8.0, 2.0]], [0, 1]).tolist()
        [[10.0, 0.0, 2.0]]
    """
    b = as_bid_matrix(bids)
    r = _as_ring(ring, b.shape[1])
    if not 0.0 <= cover < 1.0:
        raise AuctionError(f"cover must be in [0, 1), got {cover}")
    rows = np.arange(b.shape[0])
    if designated == "highest":
        chosen = r[b[:, r].argmax(axis=1)]
    elif designated == "rotate":
        chosen = r[rows % r.size]
    else:
        raise AuctionError(f"designated must be 'highest' or 'rotate', got {designated!r}")
    out = b.copy()
    lead = b[rows, chosen]
    out[:, r] = cover * lead[:, None]
    out[rows, chosen] = lead
    return out


def coefficient_of_variation(bids: np.ndarray, *, axis: int = 1) -> np.ndarray:
    """Coefficient of variation (std / mean) of the positive bids: the variance screen.

    Low values flag collusion: cover bids cluster and cartel prices move little
    (Abrantes-Metz, Froeb, Geweke & Taylor, 2006, "A variance screen for collusion", IJIO
    24(3); per tender as in Imhof, Karagoek & Rutz, 2018, "Screening for bid rigging - does it
    work?", J. Competition Law & Economics 14(2)).

    Args:
        bids: (A, n) float, bid log; 0 means no bid.
        axis: 1 for one value per auction (across its bidders), 0 per bidder (across time).

    Returns:
        (A,) or (n,) float; NaN where fewer than two positive bids.

    Example:
        >>> coefficient_of_variation([[1.0, 3.0, 0.0]]).tolist()
        [0.5]
    """
    b = as_bid_matrix(bids)
    if axis not in (0, 1):
        raise AuctionError(f"axis must be 0 (per bidder) or 1 (per auction), got {axis}")
    bidding = b > 0
    count = bidding.sum(axis=axis)
    mean = b.sum(axis=axis) / np.maximum(count, 1)  # zeros (no bid) add nothing to the sum
    dev = np.where(bidding, b - np.expand_dims(mean, axis), 0.0)
    std = np.sqrt((dev**2).sum(axis=axis) / np.maximum(count, 1))
    enough = count >= 2
    return np.divide(std, mean, out=np.full(count.shape, np.nan), where=enough)


def relative_gap(bids: np.ndarray) -> np.ndarray:
    """Relative gap ``(b1 - b2) / b1`` between the highest and second-highest bid per auction.

    The percentage-difference screen (Imhof, Karagoek & Rutz, 2018; Huber & Imhof, 2019,
    "Machine learning with screens for detecting bid-rigging cartels", IJIO 65), turned around
    for auctions the highest bid wins: a ring that suppresses its other members leaves the
    winner far above the next bid, so large gaps flag collusion.

    Args:
        bids: (A, n) float, bid log; 0 means no bid.

    Returns:
        (A,) float in [0, 1]; 1 when only one bid is positive, NaN when none is.

    Example:
        >>> relative_gap([[10.0, 8.0, 2.0], [10.0, 0.0, 2.0]]).tolist()
        [0.2, 0.8]
    """
    b = as_bid_matrix(bids)
    top = -np.sort(-np.pad(b, ((0, 0), (0, 1))), axis=1)  # the 0 column: "no second bid"
    out = np.full(b.shape[0], np.nan)
    return np.divide(top[:, 0] - top[:, 1], top[:, 0], out=out, where=top[:, 0] > 0)


@dataclass(frozen=True)
class Rotation:
    """How often a group's wins change hands, against chance.

    Attributes:
        switch_rate: share of consecutive group wins won by a different member.
        expected_switch_rate: the same if each group win went independently to a member with
            its observed win share, ``1 - sum(share^2)``.
        shares: (k,) float, each member's share of the group's wins.
        wins: number of auctions the group won.
    """

    switch_rate: float
    expected_switch_rate: float
    shares: np.ndarray
    wins: int

    @property
    def excess(self) -> float:
        """Switch rate above chance: > 0 when members take turns (perfect k-cycle: 1 / k)."""
        return self.switch_rate - self.expected_switch_rate


def winner_rotation(winners: np.ndarray, group: Sequence[int]) -> Rotation:
    """Bid-rotation screen: do the group's members take turns winning?

    Rotating wins is the classic pattern of bid-rigging schemes (Porter & Zona, 1993,
    "Detection of bid rigging in procurement auctions", JPE 101(3); Ishii, 2009, "Favor
    exchange in collusion: empirical study of repeated procurement auctions in Japan", IJIO
    27(2); OECD, 2009). Under independent competition the sequence of the group's winners is
    close to i.i.d., so its switch rate is near ``1 - sum(share^2)``; a ring that rotates
    switches more (always, for a strict cycle).

    Args:
        winners: (A,) int, top-slot winner per auction in time order (-1: unsold), e.g.
            ``outcome.winners[:, 0]`` of a BatchOutcome.
        group: the suspected members.

    Returns:
        Rotation; rates are NaN when the group won fewer than two auctions.

    Example:
        >>> winner_rotation([0, 1, 0, 1, 2], [0, 1]).excess
        0.5
    """
    w = np.asarray(winners)
    if w.ndim != 1 or not np.issubdtype(w.dtype, np.integer):
        raise AuctionError(f"winners must be a 1-D integer array, got {w.dtype} {w.shape}")
    g = np.asarray(group, dtype=np.intp)
    if g.ndim != 1 or g.size < 2 or np.unique(g).size != g.size:
        raise AuctionError(f"group must be >= 2 distinct bidder indices, got {group}")
    seq = w[np.isin(w, g)]
    shares = np.array([np.mean(seq == i) for i in g]) if seq.size else np.zeros(g.size)
    if seq.size < 2:
        return Rotation(np.nan, np.nan, shares, int(seq.size))
    return Rotation(
        switch_rate=float(np.mean(seq[1:] != seq[:-1])),
        expected_switch_rate=float(1.0 - np.sum(shares**2)),
        shares=shares,
        wins=int(seq.size),
    )


@dataclass(frozen=True)
class RingGain:
    """Competitive vs collusive totals for one reserve price (expected, over all auctions).

    Attributes:
        reserve: the per-click reserve used.
        ring_utility_competitive: the members' total utility without the ring.
        ring_utility_collusive: the same with the ring.
        revenue_competitive: seller's revenue without the ring.
        revenue_collusive: seller's revenue with the ring.
    """

    reserve: float
    ring_utility_competitive: float
    ring_utility_collusive: float
    revenue_competitive: float
    revenue_collusive: float

    @property
    def gain(self) -> float:
        """What the ring gains by colluding (members' total utility)."""
        return self.ring_utility_collusive - self.ring_utility_competitive

    @property
    def revenue_lost(self) -> float:
        """Seller's revenue lost to the ring."""
        return self.revenue_competitive - self.revenue_collusive


@dataclass(frozen=True)
class RingReport:
    """A ring's gain and the seller's loss, without and with a reserve price."""

    no_reserve: RingGain
    with_reserve: RingGain


def ring_report(
    values: np.ndarray,
    ring: Sequence[int],
    *,
    reserve: float,
    bids: np.ndarray | None = None,
    mechanism: str = "second_price",
    slot_ctrs: np.ndarray | None = None,
    quality: np.ndarray | None = None,
    designated: Literal["highest", "rotate"] = "highest",
    cover: float = 0.0,
    rng: np.random.Generator | int | np.random.SeedSequence | None = None,
) -> RingReport:
    """How much a ring gains, and the seller loses, with no reserve and with ``reserve``.

    Args:
        values: (A, n) float, true per-click values.
        ring: member indices.
        reserve: per-click reserve of the second scenario.
        bids: (A, n) competitive bids; default truthful (``values``), the dominant strategy
            in ``second_price`` and ``vcg``.
        mechanism, slot_ctrs, quality: as in ``run_auctions``.
        designated, cover: how the ring bids, as in ``ring_bids``.
        rng: seed or Generator for ties (one seed shared by all four runs).

    Example:
        >>> rep = ring_report([[10.0, 8.0, 2.0]], [0, 1], reserve=6.0)
        >>> rep.no_reserve.gain, rep.with_reserve.gain
        (6.0, 2.0)
    """
    v = as_bid_matrix(values)
    competitive = v if bids is None else as_bid_matrix(bids)
    if competitive.shape != v.shape:
        raise AuctionError(f"bids must have the values' shape {v.shape}, got {competitive.shape}")
    members = _as_ring(ring, v.shape[1])
    collusive = ring_bids(competitive, members, designated=designated, cover=cover)
    seed = int(as_rng(rng).integers(2**63))

    def totals(b: np.ndarray, r: float) -> tuple[float, float]:
        out = run_auctions(
            b,
            mechanism=mechanism,
            slot_ctrs=slot_ctrs,
            reserve=r,
            quality=quality,
            rng=np.random.default_rng(seed),
        )
        report = welfare(out, v)
        return float(report.utilities[members].sum()), report.revenue

    def scenario(r: float) -> RingGain:
        (u_comp, rev_comp), (u_coll, rev_coll) = totals(competitive, r), totals(collusive, r)
        return RingGain(r, u_comp, u_coll, rev_comp, rev_coll)

    return RingReport(no_reserve=scenario(0.0), with_reserve=scenario(float(reserve)))


@dataclass(frozen=True)
class Screens:
    """The three cartel screens of one bid log, each reduced to one number.

    Attributes:
        variation: mean per-auction coefficient of variation (low flags collusion); NaN if no
            auction had two positive bids.
        gap: mean relative gap between the two best bids (high flags collusion); NaN if no bid.
        rotation_excess: switch rate of consecutive wins minus its i.i.d. benchmark (high flags
            turn-taking); NaN with fewer than two wins.
    """

    variation: float
    gap: float
    rotation_excess: float


def screen_bid_log(bids: np.ndarray, winners: np.ndarray) -> Screens:
    """Apply the variance, gap and rotation screens to one bid log (e.g. learned bids).

    Args:
        bids: (A, n) float, bids per auction in time order; 0 means no bid.
        winners: (A,) int, top-slot winner per auction, -1 where unsold.

    Example:
        >>> s = screen_bid_log([[1.0, 3.0], [3.0, 1.0]], [1, 0])
        >>> s.variation, s.gap, s.rotation_excess
        (0.5, 0.6666666666666666, 0.5)
    """
    b = as_bid_matrix(bids)
    w = np.asarray(winners)
    if w.shape != (b.shape[0],):
        raise AuctionError(f"winners must have shape ({b.shape[0]},), got {w.shape}")
    cv, gap = coefficient_of_variation(b), relative_gap(b)
    rotation = winner_rotation(w, list(range(max(b.shape[1], 2))))

    def mean(x: np.ndarray) -> float:
        return float(np.nanmean(x)) if np.isfinite(x).any() else float("nan")

    return Screens(mean(cv), mean(gap), float(rotation.excess))
