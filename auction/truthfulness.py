"""Empirical ex-post regret: how much a bidder (or a coalition) gains by misreporting.

For a profile of true per-click values ``v`` and a coalition ``C`` (one bidder for unilateral
deviations), the ex-post regret is

    regret_C(v) = max(0, max_b sum_{i in C} u_i(b_C, v_-C) - sum_{i in C} u_i(v)),
    u_i = v_i x clicks_i - payment_i,

the best joint misreport ``b_C`` of the coalition while everyone else bids truthfully. A
mechanism is dominant-strategy truthful iff every unilateral regret is 0 (Nisan et al.,
*Algorithmic Game Theory*, 2007, ch. 9); the empirical version over sampled misreports follows
Duetting et al. (2019), "Optimal auctions through deep learning", ICML.

Misreports:

- ``"critical"`` (default): for ranking auctions a bidder's outcome only changes where its
  score crosses another's or the reserve, so each member tries 0, its value, and just above
  every outsider's threshold ``score_l / q_i`` and the reserve (``k`` offsets for a coalition
  of ``k``, so members can order themselves in one gap). Prices in ``second_price``, ``gsp`` and
  ``vcg`` are constant between thresholds, so this grid is exhaustive for them; for
  ``first_price`` the best misreport is just above a threshold, which the grid also tries.
- ``"sampled"``: uniform joint misreports in ``[0, 2 max(v, reserve)]``.
- an array: a (G,) grid of per-click bids each member tries.

Utilities are those of the realised outcome: a misreport that ties another bid is settled by
the engine's random tie-breaking, so on a tie it can show a lucky draw rather than its
expected utility. The critical grid never ties (it bids just above thresholds) and sampled
misreports tie with probability 0; keep explicit grids off the other bids for non-truthful
mechanisms. (For truthful mechanisms no tie outcome beats truthful bidding.)

Joint grids larger than ``max_misreports`` are subsampled uniformly.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._validation import AuctionError, as_rng, as_slot_ctrs
from .engine import run_auctions
from .outcome import BatchOutcome
from .welfare import expected_clicks

Mechanism = str | Callable[[np.ndarray], BatchOutcome]
RngLike = np.random.Generator | int | np.random.SeedSequence | None


@dataclass(frozen=True)
class Deviation:
    """A profitable joint misreport.

    Attributes:
        instance: row of ``values`` it was found in.
        bidders: the coalition, bidder indices.
        values: (k,) float, the members' true per-click values.
        misreports: (k,) float, the per-click bids they submit instead.
        gain: coalition's total utility gain over truthful bidding.
    """

    instance: int
    bidders: tuple[int, ...]
    values: np.ndarray
    misreports: np.ndarray
    gain: float


@dataclass(frozen=True)
class RegretReport:
    """Regret of every coalition on every instance.

    Attributes:
        regrets: (I, C) float >= 0, best gain per instance and coalition.
        coalitions: the C coalitions, as tuples of bidder indices.
        best: the largest deviation found, ``None`` if no misreport gained.
    """

    regrets: np.ndarray
    coalitions: tuple[tuple[int, ...], ...]
    best: Deviation | None

    @property
    def max_regret(self) -> float:
        """Largest regret over instances and coalitions."""
        return float(self.regrets.max(initial=0.0))

    @property
    def mean_regret(self) -> float:
        """Mean regret over instances and coalitions."""
        return float(self.regrets.mean()) if self.regrets.size else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary: max/mean regret, the coalitions and the best deviation."""
        best = self.best
        return {
            "max_regret": self.max_regret,
            "mean_regret": self.mean_regret,
            "coalitions": [list(c) for c in self.coalitions],
            "best": None
            if best is None
            else {
                "instance": best.instance,
                "bidders": list(best.bidders),
                "values": best.values.tolist(),
                "misreports": best.misreports.tolist(),
                "gain": best.gain,
            },
        }


def _as_coalitions(coalitions: int | Sequence[Sequence[int]], n: int) -> list[tuple[int, ...]]:
    if isinstance(coalitions, int | np.integer):
        if not 1 <= coalitions <= n:
            raise AuctionError(f"coalitions as a size must be in [1, {n}], got {coalitions}")
        return list(itertools.combinations(range(n), int(coalitions)))
    out = [tuple(int(i) for i in c) for c in coalitions]
    for c in out:
        if not c or len(set(c)) != len(c) or min(c) < 0 or max(c) >= n:
            raise AuctionError(
                f"each coalition must be distinct bidder indices in [0, {n}), got {c}"
            )
    return out


def _per_instance(arr: object, name: str, shape: tuple[int, ...], n_inst: int) -> np.ndarray:
    """Broadcast a per-instance argument to (I, *shape)."""
    a = np.asarray(arr, dtype=np.float64)
    try:
        return np.broadcast_to(a, (n_inst, *shape))
    except ValueError:
        raise AuctionError(
            f"{name} must have shape {shape} or ({n_inst}, *{shape}), got {a.shape}"
        ) from None


def _as_misreports(misreports: str | np.ndarray) -> str | np.ndarray:
    if isinstance(misreports, str):
        if misreports not in ("critical", "sampled"):
            raise AuctionError(
                f"misreports must be 'critical', 'sampled' or an array, got {misreports!r}"
            )
        return misreports
    grid = np.asarray(misreports, dtype=np.float64)
    if grid.ndim != 1 or not np.isfinite(grid).all() or (grid < 0).any():
        raise AuctionError("a misreport grid must be 1-D, finite and >= 0")
    return grid


def _joint_misreports(
    misreports: str | np.ndarray,
    c: tuple[int, ...],
    v: np.ndarray,
    q: np.ndarray,
    reserve: float,
    limit: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """(G, k) joint misreports of coalition ``c`` on one instance, at most ``limit`` rows."""
    k = len(c)
    scale = max(float(v.max()), reserve, 1e-12)
    if isinstance(misreports, str) and misreports == "sampled":
        return rng.uniform(0.0, 2.0 * scale, size=(limit, k))
    if isinstance(misreports, str):
        outside = np.setdiff1d(np.arange(v.size), c)
        # k distinct bumps above each threshold let the members order themselves in one gap.
        offsets = scale * 1e-9 * np.arange(1, k + 1)
        axes = []
        for i in c:
            thresholds = np.append(v[outside] * q[outside] / q[i], reserve)
            bumped = (thresholds[:, None] + offsets).ravel()
            axes.append(np.unique(np.concatenate([[0.0, v[i]], bumped])))
    else:
        axes = [misreports] * k
    sizes = [a.size for a in axes]
    if np.prod(sizes, dtype=np.float64) <= limit:
        return np.stack([g.ravel() for g in np.meshgrid(*axes, indexing="ij")], axis=1)
    picks = [rng.integers(size, size=limit) for size in sizes]
    return np.stack([a[p] for a, p in zip(axes, picks, strict=True)], axis=1)


def ex_post_regret(
    values: np.ndarray,
    *,
    mechanism: Mechanism = "second_price",
    slot_ctrs: np.ndarray | None = None,
    reserve: float | np.ndarray = 0.0,
    quality: np.ndarray | None = None,
    coalitions: int | Sequence[Sequence[int]] = 1,
    misreports: str | np.ndarray = "critical",
    max_misreports: int = 1024,
    tol: float = 1e-9,
    rng: RngLike = None,
) -> RegretReport:
    """Empirical ex-post regret of a mechanism on one or many value profiles.

    Args:
        values: (n,) or (I, n) float, true per-click values (one profile per row).
        mechanism: an engine mechanism name, or ``mechanism(bids (A, n)) -> BatchOutcome``
            (then ``slot_ctrs``/``reserve``/``quality`` only place the critical grid).
        slot_ctrs: (K,) float, non-increasing; ``None`` is one slot with CTR 1.
        reserve: scalar or (I,) float, per-click reserve.
        quality: (n,) or (I, n) float > 0, ranking weights.
        coalitions: ``k`` for every coalition of ``k`` bidders (1: unilateral deviations,
            2: pairs), or explicit coalitions such as ``[(0, 1), (2, 3, 4)]`` (rings).
        misreports: ``"critical"``, ``"sampled"`` or a (G,) grid of per-click bids.
        max_misreports: most joint misreports tried per coalition and instance.
        tol: gains below ``tol x max(1, max value x top CTR)`` per member count as float
            noise (regret 0).
        rng: seed or Generator for ties and sampled misreports.

    Returns:
        RegretReport with regrets (I, C), max/mean regret and the best deviation.

    Example:
        >>> ex_post_regret([10.0, 4.0, 2.0], mechanism="vcg", slot_ctrs=[1.0, 0.995]).max_regret
        0.0
    """
    v_all = np.asarray(values, dtype=np.float64)
    if v_all.ndim == 1:
        v_all = v_all[None, :]
    if v_all.ndim != 2 or v_all.shape[1] == 0:
        raise AuctionError(f"values must have shape (n,) or (instances, n), got {v_all.shape}")
    if not np.isfinite(v_all).all() or (v_all < 0).any():
        raise AuctionError("values must be finite and >= 0 (per-click amounts)")
    n_inst, n = v_all.shape
    misreports = _as_misreports(misreports)
    if int(max_misreports) != max_misreports or max_misreports < 1:
        raise AuctionError(f"max_misreports must be an integer >= 1, got {max_misreports}")
    ctrs = as_slot_ctrs(slot_ctrs)
    res_all = _per_instance(reserve, "reserve", (), n_inst)
    q_all = _per_instance(1.0 if quality is None else quality, "quality", (n,), n_inst)
    if not np.isfinite(q_all).all() or (q_all <= 0).any():
        raise AuctionError("quality must be finite and > 0 (e.g. a predicted CTR)")
    groups = _as_coalitions(coalitions, n)
    gen = as_rng(rng)

    regrets = np.zeros((n_inst, len(groups)))
    best: Deviation | None = None
    for inst in range(n_inst):
        v, q, r = v_all[inst], q_all[inst], float(res_all[inst])
        joints = [
            _joint_misreports(misreports, c, v, q, r, int(max_misreports), gen) for c in groups
        ]
        if callable(mechanism):
            run = mechanism
        else:
            run = functools.partial(
                run_auctions,
                mechanism=mechanism,
                slot_ctrs=slot_ctrs,
                reserve=r,
                quality=None if quality is None else q,
                rng=gen,
            )
        gains = _coalition_gains(run, v, groups, joints)
        noise = tol * max(1.0, float(v.max()) * float(ctrs[0]))
        for ci, (c, j, g) in enumerate(zip(groups, joints, gains, strict=True)):
            top = int(g.argmax())
            if g[top] <= noise * len(c):
                continue
            regrets[inst, ci] = g[top]
            if best is None or g[top] > best.gain:
                best = Deviation(inst, c, v[list(c)].copy(), j[top].copy(), float(g[top]))
    return RegretReport(regrets=regrets, coalitions=tuple(groups), best=best)


def _coalition_gains(
    run: Callable[[np.ndarray], BatchOutcome],
    v: np.ndarray,
    groups: list[tuple[int, ...]],
    joints: list[np.ndarray],
) -> list[np.ndarray]:
    """Each coalition's utility gain per joint misreport, all rows in one batched run."""
    sizes = [j.shape[0] for j in joints]
    starts = np.cumsum([1, *sizes])[:-1]
    bids = np.repeat(v[None, :], 1 + sum(sizes), axis=0)  # row 0: everyone truthful
    for c, j, s in zip(groups, joints, starts, strict=True):
        bids[s : s + j.shape[0], list(c)] = j
    outcome = run(bids)
    utility = v * expected_clicks(outcome) - outcome.payments
    return [
        utility[s : s + size, list(c)].sum(axis=1) - utility[0, list(c)].sum()
        for c, s, size in zip(groups, starts, sizes, strict=True)
    ]
