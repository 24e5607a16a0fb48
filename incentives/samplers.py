"""Sampled Shapley estimators and the loop that runs them until a stopping rule fires.

- ``PermutationSampler``: the mean marginal contribution over random permutations, drawn as
  antithetic pairs (a permutation and its reverse: far lower variance, exact for additive
  games). With ``truncation`` it is TMC-Shapley (Ghorbani & Zou 2019): once a permutation's
  prefix is within ``truncation x |v(N) - v(empty)|`` of v(N), the remaining marginals count
  as 0 and are not evaluated.
- ``GuidedStratifiedSampler``: GTG-Shapley's sampler (Liu et al. 2022) in stratified form.
  ``phi_i = 1/n sum_k m_ik`` where ``m_ik`` is i's mean marginal contribution at position k.
  The first stratum (GTG's guided sampling puts each player first in turn) and the last one
  are computed exactly, ``m_i0 = v({i}) - v(empty)`` and ``m_i,n-1 = v(N) - v(N - i)``, from
  2n + 2 evaluations; the middle strata are sampled with truncated permutations drawn in
  blocks of n that form a random Latin square, so each player takes every position once per
  block (stratified sampling, Castro et al. 2017). Each permutation also yields two samples for
  free: swapping its first (last) two players gives a permutation whose coalitions are all
  known already. A stratum not sampled yet is interpolated from the player's neighbouring
  strata.
- ``banzhaf_msr``: Banzhaf values from random subsets, every subset reused for every player
  (maximum sample reuse, Wang & Jia 2023).

Example:
    >>> from incentives.utility import CachedUtility
    >>> u = CachedUtility(lambda s: float(len(s)))
    >>> sampler = GuidedStratifiedSampler(u, 4, np.random.default_rng(0))
    >>> sampler.step()
    >>> sampler.estimate()[0].tolist()
    [1.0, 1.0, 1.0, 1.0]
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np

from .exact import MAX_EXACT, exact_semivalue
from .stopping import StoppingRule
from .utility import CachedUtility

# A sampler stops after this many permutations without a new coalition (its rule cannot fire).
STALL_PERMUTATIONS = 1000


class Sampler(Protocol):
    """One sample (a permutation, or a coalition) at a time; the current standard errors (n,),
    checked after every step, and the (values, stderr) estimate, each (n,) float, asked for
    once at the end (it may cost more than a step)."""

    def step(self) -> None: ...

    def stderr(self) -> np.ndarray: ...

    def estimate(self) -> tuple[np.ndarray, np.ndarray]: ...


def _walk(u: CachedUtility, perm: np.ndarray, v_all: float, cutoff: float | None) -> np.ndarray:
    """(n,) marginal contribution of ``perm[j]`` at position j; 0 after truncation."""
    marg = np.zeros(perm.size)
    prefix: set[int] = set()
    prev = u(frozenset())
    for j, player in enumerate(perm):
        if cutoff is not None and j > 0 and abs(v_all - prev) <= cutoff:
            break  # the rest adds (almost) nothing
        prefix.add(int(player))
        cur = u(frozenset(prefix))
        marg[j], prev = cur - prev, cur
    return marg


class _Welford:
    """Running mean and standard error of (n,) samples."""

    def __init__(self, n: int) -> None:
        self.k, self.mean, self.m2 = 0, np.zeros(n), np.zeros(n)

    def add(self, x: np.ndarray) -> None:
        self.k += 1
        delta = x - self.mean
        self.mean += delta / self.k
        self.m2 += delta * (x - self.mean)

    @property
    def stderr(self) -> np.ndarray:
        if self.k < 2:
            return np.full(self.mean.size, np.inf)
        return np.sqrt(self.m2 / (self.k - 1) / self.k)


class PermutationSampler:
    """Monte Carlo over antithetic permutation pairs; TMC when ``truncation`` is set."""

    def __init__(
        self, u: CachedUtility, n: int, gen: np.random.Generator, truncation: float | None = None
    ) -> None:
        self.u, self.n, self.gen = u, n, gen
        self.v_all = u(frozenset(range(n)))
        scale = abs(self.v_all - u(frozenset()))
        self.cutoff = None if truncation is None else truncation * scale
        self.stats = _Welford(n)

    def _by_player(self, perm: np.ndarray) -> np.ndarray:
        out = np.zeros(self.n)
        out[perm] = _walk(self.u, perm, self.v_all, self.cutoff)
        return out

    def step(self) -> None:
        perm = self.gen.permutation(self.n)
        self.stats.add(0.5 * (self._by_player(perm) + self._by_player(perm[::-1])))

    def stderr(self) -> np.ndarray:
        return self.stats.stderr

    def estimate(self) -> tuple[np.ndarray, np.ndarray]:
        return self.stats.mean.copy(), self.stats.stderr


class GuidedStratifiedSampler:
    """GTG-Shapley's stratified sampler (see module doc); ``truncation`` as in TMC."""

    def __init__(
        self, u: CachedUtility, n: int, gen: np.random.Generator, truncation: float | None = None
    ) -> None:
        self.u, self.n, self.gen = u, n, gen
        everyone = frozenset(range(n))
        v_none, self.v_all = u(frozenset()), u(everyone)
        self.cutoff = None if truncation is None else truncation * abs(self.v_all - v_none)
        self.first = np.array([u(frozenset({i})) - v_none for i in range(n)])
        self.last = np.array([self.v_all - u(everyone - {i}) for i in range(n)])
        self.sums = np.zeros((n, n))  # [player, position]: middle positions 1..n-2 only
        self.counts = np.zeros((n, n), dtype=int)
        self.blocks = _Welford(n)  # one sample per complete block: its plain estimate
        self._queue: list[np.ndarray] = []
        self._block_sum = np.zeros(n)

    def _latin_square(self) -> list[np.ndarray]:
        """n permutations; each player takes each position once: L[r, k] = s[(p[r]+q[k]) % n]."""
        s, p, q = (self.gen.permutation(self.n) for _ in range(3))
        return [s[(p[r] + q) % self.n] for r in range(self.n)]

    def step(self) -> None:
        if not self._queue:
            self._queue = self._latin_square()
        perm = self._queue.pop()
        middle = np.arange(1, self.n - 1)
        marg = _walk(self.u, perm, self.v_all, self.cutoff)
        self.sums[perm[middle], middle] += marg[middle]
        self.counts[perm[middle], middle] += 1
        self._block_sum[perm[middle]] += marg[middle]
        self._swapped(perm)
        if not self._queue:
            self.blocks.add(self._plain(self._block_sum))
            self._block_sum = np.zeros(self.n)

    def _swapped(self, perm: np.ndarray) -> None:
        """Free samples: ``perm`` with its first (last) two players swapped needs no new
        coalition, so its marginal at position 1 (n-2) is read from the cache."""
        n, u = self.n, self.u
        if n < 4:  # no middle positions besides those the walk itself covers
            return
        a, b, y, z = (int(p) for p in perm[[0, 1, -2, -1]])
        pair, rest = frozenset({a, b}), frozenset(range(n)) - {y, z}
        if pair in u:
            self.sums[a, 1] += u(pair) - u(frozenset({b}))
            self.counts[a, 1] += 1
        if rest in u:
            self.sums[z, n - 2] += u(rest | {z}) - u(rest)
            self.counts[z, n - 2] += 1

    def _plain(self, middle_sum: np.ndarray) -> np.ndarray:
        if self.n == 1:
            return self.first.copy()
        return (self.first + middle_sum + self.last) / self.n

    def stderr(self) -> np.ndarray:
        return np.zeros(self.n) if self.n <= 2 else self.blocks.stderr

    def estimate(self) -> tuple[np.ndarray, np.ndarray]:
        if self.n <= 2:
            return self._plain(np.zeros(self.n)), np.zeros(self.n)
        positions = np.arange(self.n)
        strata = np.zeros((self.n, self.n))
        for i in range(self.n):
            known = np.flatnonzero(self.counts[i])  # sampled middle positions
            xs = np.concatenate([[0], known, [self.n - 1]])
            ys = np.concatenate(
                [[self.first[i]], self.sums[i, known] / self.counts[i, known], [self.last[i]]]
            )
            strata[i] = np.interp(positions, xs, ys)
        return strata.mean(axis=1), self.blocks.stderr


def run_sampler(
    sampler: Sampler, u: CachedUtility, n: int, stopping: StoppingRule
) -> tuple[np.ndarray, np.ndarray, int, bool]:
    """Step until ``stopping`` fires: (values, stderr, steps, converged).

    Also stops when the rule cannot fire: once every coalition is cached the exact values are
    returned (converged), and after ``STALL_PERMUTATIONS`` permutations without a new
    coalition the current estimate is (not converged).
    """
    steps = stalled = 0
    seen = u.evaluations
    needs_stderr = stopping.needs_stderr  # else every step would pay for an unused stderr
    while True:
        sampler.step()
        steps += 1
        state = {
            "permutations": steps,
            "evaluations": u.evaluations,
            "stderr": float(sampler.stderr().max()) if needs_stderr else math.nan,
        }
        if stopping.done(**state):
            return *sampler.estimate(), steps, stopping.converged(**state)
        if n <= MAX_EXACT and u.evaluations >= 1 << n:
            return exact_semivalue(u, n), np.zeros(n), steps, True
        stalled = 0 if u.evaluations > seen else stalled + 1
        seen = u.evaluations
        if stalled > STALL_PERMUTATIONS:
            return *sampler.estimate(), steps, False


def banzhaf_msr(
    u: CachedUtility, n: int, gen: np.random.Generator, samples: int
) -> tuple[np.ndarray, np.ndarray]:
    """(values, stderr), each (n,): mean v over sampled subsets with i minus those without."""
    inside = gen.random((samples, n)) < 0.5
    v = np.array([u(frozenset(np.flatnonzero(row).tolist())) for row in inside])
    values, stderr = np.zeros(n), np.full(n, np.inf)
    for i in range(n):
        a, b = v[inside[:, i]], v[~inside[:, i]]
        if a.size and b.size:
            values[i] = a.mean() - b.mean()
            stderr[i] = math.sqrt(a.var() / a.size + b.var() / b.size)
    return values, stderr
