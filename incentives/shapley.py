"""Contribution valuation: exact and sampled Shapley values, GTG-Shapley, LOO, Banzhaf.

``utility(coalition: frozenset) -> float`` is any game; every method evaluates each coalition
at most once (cached) and reports how many distinct coalitions it evaluated.

- ``exact``: ``phi_i = sum_S |S|!(n-|S|-1)!/n! (v(S+i) - v(S))``; 2^n evaluations, n <= 16.
- ``permutation``: mean marginal contribution over sampled permutations.
- ``tmc``: permutation sampling truncated once a prefix is within ``truncation`` of v(N)
  (Ghorbani & Zou 2019).
- ``gtg``: GTG-Shapley (Liu et al. 2022): between-round truncation (a round whose total gain
  is negligible is not valued), within-round truncation as in TMC, and guided permutations
  (each player leads equally often).
- ``loo``: leave-one-out ``v(N) - v(N - i)``; n + 1 evaluations.
- ``banzhaf``: ``mean_{S without i} (v(S+i) - v(S))``; exact for n <= 16, else sampled
  subsets with maximum sample reuse.

Example:
    >>> glove = lambda s: float(min(len(s & {0}), len(s & {1, 2})))  # 1 left, 2 right gloves
    >>> shapley_values(glove, 3).round(4).tolist()
    [0.6667, 0.1667, 0.1667]
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._errors import IncentiveError
from .stopping import MaxPermutations, StandardErrorBelow, StoppingRule
from .utility import CachedUtility, Utility

METHODS = ("exact", "permutation", "tmc", "gtg", "loo", "banzhaf")
MAX_EXACT = 16
# A sampler stops after this many permutations without a new coalition (rule cannot fire).
_STALL_PERMUTATIONS = 1000


@dataclass(frozen=True)
class ValuationResult:
    """Values with their uncertainty and cost.

    Attributes:
        values: (n,) float.
        stderr: (n,) float, standard error (0 for exact methods).
        n_evaluations: distinct coalitions evaluated.
        permutations: permutations (or subsets) sampled; 0 for exact methods.
        converged: an accuracy-based stopping rule was met (always True for exact methods).
        method: the method used.
    """

    values: np.ndarray
    stderr: np.ndarray
    n_evaluations: int
    permutations: int
    converged: bool
    method: str


def _masks_value(u: CachedUtility, n: int) -> np.ndarray:
    return np.array([u(frozenset(i for i in range(n) if mask >> i & 1)) for mask in range(1 << n)])


def _popcount(n: int) -> np.ndarray:
    masks = np.arange(1 << n)
    return np.array([bin(m).count("1") for m in masks])


def _exact(u: CachedUtility, n: int, banzhaf: bool) -> np.ndarray:
    v = _masks_value(u, n)
    size = _popcount(n)
    if banzhaf:
        weight = np.full(n, 1.0 / (1 << (n - 1)))
    else:
        weight = np.array(
            [math.factorial(s) * math.factorial(n - s - 1) / math.factorial(n) for s in range(n)]
        )
    out = np.zeros(n)
    masks = np.arange(1 << n)
    for i in range(n):
        without = masks[(masks >> i & 1) == 0]
        out[i] = float((weight[size[without]] * (v[without | (1 << i)] - v[without])).sum())
    return out


def _sampled(
    u: CachedUtility,
    n: int,
    gen: np.random.Generator,
    stopping: StoppingRule,
    *,
    truncation: float | None,
    guided: bool,
) -> tuple[np.ndarray, np.ndarray, int, bool]:
    """Permutation sampling with optional truncation and guided first players (Welford)."""
    everyone = frozenset(range(n))
    v_all, v_none = u(everyone), u(frozenset())
    scale = abs(v_all - v_none)
    mean, m2 = np.zeros(n), np.zeros(n)
    k = last_new = last_count = 0

    def marginals(perm: np.ndarray) -> np.ndarray:
        marg = np.zeros(n)
        prefix: set[int] = set()
        prev = v_none
        for j, player in enumerate(perm):
            if truncation is not None and j > 0 and abs(v_all - prev) <= truncation * scale:
                break  # the rest adds (almost) nothing: their marginals are 0
            prefix.add(int(player))
            cur = u(frozenset(prefix))
            marg[player] = cur - prev
            prev = cur
        return marg

    while True:
        perm = gen.permutation(n)
        if guided:  # GTG: player k mod n leads this permutation
            lead = k % n
            perm = np.concatenate([[lead], perm[perm != lead]])
        # Antithetic pair: a permutation and its reverse; their mean has far lower variance
        # (exact for additive games), at most twice the evaluations.
        marg = 0.5 * (marginals(perm) + marginals(perm[::-1]))
        k += 1
        delta = marg - mean
        mean += delta / k
        m2 += delta * (marg - mean)
        stderr = np.sqrt(m2 / max(k - 1, 1) / k) if k > 1 else np.full(n, np.inf)
        state = {"permutations": k, "evaluations": u.evaluations, "stderr": float(stderr.max())}
        if stopping.done(**state):
            return mean, stderr, k, stopping.converged(**state)
        # Guards against rules that can never fire: every coalition is known (the cache
        # then gives the exact values), or no new coalition for many permutations.
        if n <= MAX_EXACT and u.evaluations >= 1 << n:
            return _exact(u, n, banzhaf=False), np.zeros(n), k, True
        if u.evaluations > last_count:
            last_count, last_new = u.evaluations, k
        elif k - last_new > _STALL_PERMUTATIONS:
            return mean, stderr, k, False


def _banzhaf_sampled(
    u: CachedUtility, n: int, gen: np.random.Generator, samples: int
) -> tuple[np.ndarray, np.ndarray]:
    inside = gen.random((samples, n)) < 0.5
    v = np.array([u(frozenset(np.flatnonzero(row).tolist())) for row in inside])
    values, stderr = np.zeros(n), np.zeros(n)
    for i in range(n):
        a, b = v[inside[:, i]], v[~inside[:, i]]
        if a.size and b.size:
            values[i] = a.mean() - b.mean()
            stderr[i] = math.sqrt(a.var() / a.size + b.var() / b.size)
    return values, stderr


def valuate(
    utility: Utility,
    n: int,
    *,
    method: str = "exact",
    rng: np.random.Generator | int | None = None,
    stopping: StoppingRule | None = None,
    truncation: float = 0.01,
    round_truncation: float = 1e-3,
    samples: int = 2000,
) -> ValuationResult:
    """Value ``n`` players of ``utility`` (see the module table).

    Args:
        utility: ``utility(frozenset) -> float``.
        n: number of players ``0..n-1``.
        method: one of ``METHODS``.
        rng: seed or Generator for sampled methods.
        stopping: for ``permutation``/``tmc``/``gtg``; default 500 permutations or every
            standard error below 1e-3 x |v(N) - v(empty)|.
        truncation: ``tmc``/``gtg``: stop a permutation once its prefix is within this share
            of ``|v(N) - v(empty)|`` of v(N).
        round_truncation: ``gtg``: if ``|v(N) - v(empty)| <= round_truncation x (1 + |v(empty)|)``
            the round is not worth valuing: every value is 0 (two evaluations).
        samples: ``banzhaf`` with n > 16: random subsets.
    """
    if method not in METHODS:
        raise IncentiveError(f"unknown method {method!r}; allowed: {', '.join(METHODS)}")
    if int(n) != n or n < 1:
        raise IncentiveError(f"n must be an integer >= 1, got {n}")
    u = CachedUtility(utility)
    zeros = np.zeros(n)
    if method in ("exact", "banzhaf") and n <= MAX_EXACT:
        vals = _exact(u, n, banzhaf=method == "banzhaf")
        return ValuationResult(vals, zeros, u.evaluations, 0, True, method)
    if method == "exact":
        raise IncentiveError(f"exact Shapley needs n <= {MAX_EXACT}; use 'tmc' or 'gtg'")
    gen = np.random.default_rng(rng)
    if method == "banzhaf":
        vals, err = _banzhaf_sampled(u, n, gen, samples)
        return ValuationResult(vals, err, u.evaluations, samples, False, method)
    everyone = frozenset(range(n))
    if method == "loo":
        total = u(everyone)
        vals = np.array([total - u(everyone - {i}) for i in range(n)])
        return ValuationResult(vals, zeros, u.evaluations, 0, True, method)
    gain = u(everyone) - u(frozenset())
    if method == "gtg" and abs(gain) <= round_truncation * (1 + abs(u(frozenset()))):
        return ValuationResult(zeros, zeros, u.evaluations, 0, True, method)
    rule = stopping or (MaxPermutations(500) | StandardErrorBelow(1e-3 * max(abs(gain), 1e-12), 30))
    vals, err, k, ok = _sampled(
        u,
        n,
        gen,
        rule,
        truncation=None if method == "permutation" else truncation,
        guided=method == "gtg",
    )
    return ValuationResult(vals, err, u.evaluations, k, ok, method)


def shapley_values(
    utility: Utility,
    n: int,
    *,
    method: str = "exact",
    rng: np.random.Generator | int | None = None,
    **options: object,
) -> np.ndarray:
    """(n,) contribution values of ``n`` players (contract of shared/DESIGN.md).

    ``method``: ``"exact"`` | ``"tmc"`` | ``"gtg"`` | ``"loo"`` (also ``"permutation"``,
    ``"banzhaf"``); ``options`` go to ``valuate``. Use ``valuate`` for errors and costs.
    """
    return valuate(utility, n, method=method, rng=rng, **options).values
