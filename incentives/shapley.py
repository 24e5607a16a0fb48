"""Contribution valuation: exact and sampled Shapley values, GTG-Shapley, LOO, Banzhaf.

``utility(coalition: frozenset) -> float`` is any game on players ``0..n-1``; every method
evaluates each coalition at most once (cached) and reports how many distinct coalitions it
evaluated.

- ``exact``: ``phi_i = sum_S |S|!(n-|S|-1)!/n! (v(S+i) - v(S))``; 2^n evaluations, n <= 16.
- ``permutation``: mean marginal contribution over sampled permutations (antithetic pairs).
- ``tmc``: permutation sampling truncated once a prefix is within ``truncation`` of v(N)
  (Ghorbani & Zou 2019).
- ``gtg``: GTG-Shapley (Liu et al. 2022) for federated rounds: between-round truncation (a round
  whose total gain is negligible is not valued), within-round truncation as in TMC, and guided
  sampling, here in stratified form: the first and last positions are computed exactly and
  every player takes every middle position equally often (see ``samplers``).
- ``svarm-cv``: for federated rounds (n <= 16): GTG's between-round truncation and exact first
  and last strata, then coalitions sampled by size with every coalition reused for every
  player (Stratified SVARM), and a fitted second-order model of the sub-model utility as a
  control variate (see ``stratified``); ``weights`` are the round's aggregation weights.
- ``loo``: leave-one-out ``v(N) - v(N - i)``; n + 1 evaluations.
- ``banzhaf``: ``mean_{S without i} (v(S+i) - v(S))``; exact for n <= 16, else sampled
  subsets with maximum sample reuse.

Example:
    >>> glove = lambda s: float(min(len(s & {0}), len(s & {1, 2})))  # 1 left, 2 right gloves
    >>> shapley_values(glove, 3).round(4).tolist()
    [0.6667, 0.1667, 0.1667]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ._errors import IncentiveError
from .exact import MAX_EXACT, exact_semivalue
from .samplers import GuidedStratifiedSampler, PermutationSampler, banzhaf_msr, run_sampler
from .stopping import MaxPermutations, StandardErrorBelow, StoppingRule
from .stratified import StratifiedCVSampler
from .utility import CachedUtility, Utility

METHODS = ("exact", "permutation", "tmc", "gtg", "svarm-cv", "loo", "banzhaf")
_OPTIONS = {"stopping", "truncation", "round_truncation", "samples", "weights"}
Seed = np.random.Generator | np.random.SeedSequence | int | Sequence[int] | None


@dataclass(frozen=True)
class ValuationResult:
    """Values with their uncertainty and cost.

    Attributes:
        values: (n,) float.
        stderr: (n,) float, standard error (0 for exact methods, inf while unknown).
        n_evaluations: distinct coalitions evaluated.
        permutations: permutations (``svarm-cv``: coalitions; ``banzhaf``: subsets) sampled;
            0 for exact methods.
        converged: an accuracy-based stopping rule was met (always True for exact methods).
        method: the method used.
    """

    values: np.ndarray
    stderr: np.ndarray
    n_evaluations: int
    permutations: int
    converged: bool
    method: str


def _check(
    utility: Utility,
    n: int,
    method: str,
    stopping: StoppingRule | None,
    truncation: float,
    round_truncation: float,
    samples: int,
    weights: Sequence[float] | None,
) -> None:
    if method not in METHODS:
        raise IncentiveError(f"method: unknown {method!r}; allowed: {', '.join(METHODS)}")
    if not callable(utility):
        raise IncentiveError(f"utility must be callable (frozenset -> float), got {utility!r}")
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise IncentiveError(f"n must be an integer >= 1, got {n!r}")
    if stopping is not None and not isinstance(stopping, StoppingRule):
        raise IncentiveError(f"stopping must be a StoppingRule, got {type(stopping).__name__}")
    if not 0 <= truncation < 1:
        raise IncentiveError(f"truncation must be in [0, 1), got {truncation}")
    if round_truncation < 0:
        raise IncentiveError(f"round_truncation must be >= 0, got {round_truncation}")
    if int(samples) != samples or samples < 1:
        raise IncentiveError(f"samples must be an integer >= 1, got {samples}")
    if method == "svarm-cv" and n > MAX_EXACT:
        raise IncentiveError(
            f"n: 'svarm-cv' needs n <= {MAX_EXACT} (its control variate is valued on every "
            f"coalition), got {n}; use 'gtg'"
        )
    if weights is None:
        return
    if method != "svarm-cv":
        raise IncentiveError(f"weights: only 'svarm-cv' uses them, not {method!r}")
    w = np.asarray(weights, dtype=float)
    if w.shape != (n,) or not np.isfinite(w).all() or (w <= 0).any():
        raise IncentiveError(f"weights must be {n} finite numbers > 0, got {weights}")


def valuate(
    utility: Utility,
    n: int,
    *,
    method: str = "exact",
    rng: Seed = None,
    stopping: StoppingRule | None = None,
    truncation: float = 0.01,
    round_truncation: float = 1e-3,
    samples: int = 2000,
    weights: Sequence[float] | None = None,
) -> ValuationResult:
    """Value the ``n`` players of ``utility`` with ``method`` (see the module list).

    Args:
        utility: ``utility(frozenset) -> float``.
        n: number of players ``0..n-1``.
        method: one of ``METHODS``.
        rng: seed, SeedSequence or Generator for the sampled methods.
        stopping: for ``permutation``/``tmc``/``gtg``/``svarm-cv``; default 500 permutations
            (``svarm-cv``: coalitions) or every standard error below 1e-3 x |v(N) - v(empty)|
            (after 30).
        truncation: ``tmc``/``gtg``: stop a permutation once its prefix is within this share
            of ``|v(N) - v(empty)|`` of v(N), in [0, 1).
        round_truncation: ``gtg``/``svarm-cv``: if ``|v(N) - v(empty)| <= round_truncation x
            (1 + |v(empty)|)`` the round is not worth valuing: every value is 0 (two
            evaluations).
        samples: ``banzhaf`` with n > 16: random subsets.
        weights: ``svarm-cv``: the round's aggregation weights (those given to
            ``fl_utility``), n numbers > 0; default equal.

    Example:
        >>> valuate(lambda s: float(len(s)), 20, method="tmc", rng=0).n_evaluations <= 2**20
        True
    """
    _check(utility, n, method, stopping, truncation, round_truncation, samples, weights)
    u = CachedUtility(utility)
    zeros = np.zeros(n)
    if method in ("exact", "banzhaf") and n <= MAX_EXACT:
        values = exact_semivalue(u, n, banzhaf=method == "banzhaf")
        return ValuationResult(values, zeros, u.evaluations, 0, True, method)
    if method == "exact":
        raise IncentiveError(f"n: exact Shapley needs n <= {MAX_EXACT}, got {n}; use 'gtg'")
    gen = np.random.default_rng(rng)
    if method == "banzhaf":
        values, err = banzhaf_msr(u, n, gen, int(samples))
        return ValuationResult(values, err, u.evaluations, int(samples), False, method)
    everyone = frozenset(range(n))
    if method == "loo":
        total = u(everyone)
        values = np.array([total - u(everyone - {i}) for i in range(n)])
        return ValuationResult(values, zeros, u.evaluations, 0, True, method)
    v_none = u(frozenset())
    gain = u(everyone) - v_none
    if method in ("gtg", "svarm-cv") and abs(gain) <= round_truncation * (1 + abs(v_none)):
        return ValuationResult(zeros, zeros, u.evaluations, 0, True, method)
    if method == "gtg":
        sampler = GuidedStratifiedSampler(u, n, gen, truncation)
    elif method == "svarm-cv":
        sampler = StratifiedCVSampler(u, n, gen, np.ones(n) if weights is None else weights)
    else:
        sampler = PermutationSampler(u, n, gen, truncation if method == "tmc" else None)
    rule = stopping or (MaxPermutations(500) | StandardErrorBelow(1e-3 * max(abs(gain), 1e-12)))
    values, err, steps, converged = run_sampler(sampler, u, n, rule)
    return ValuationResult(values, err, u.evaluations, steps, converged, method)


def shapley_values(
    utility: Utility, n: int, *, method: str = "exact", rng: Seed = None, **options: object
) -> np.ndarray:
    """(n,) contribution values of ``n`` players (the contract of shared/DESIGN.md).

    ``method``: ``"exact"`` | ``"tmc"`` | ``"gtg"`` | ``"loo"`` (also ``"permutation"``,
    ``"svarm-cv"``, ``"banzhaf"``); ``options`` go to ``valuate``, which also returns errors
    and costs.
    """
    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        raise IncentiveError(f"unknown options {unknown}; allowed: {', '.join(sorted(_OPTIONS))}")
    return valuate(utility, n, method=method, rng=rng, **options).values  # type: ignore[arg-type]
