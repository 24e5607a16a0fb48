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

- ``auto``: the method for the game's size and budget (:func:`auto_method`): ``exact`` when
  all 2^n coalitions fit the ``MaxEvaluations`` budget, ``svarm-cv`` for n <= 16 when the
  budget holds its 2n + 2 fixed coalitions, ``gtg`` otherwise (measured on federated rounds
  of 4-15 clients: ``benchmarks/valuation.py --by-size``, table in ``incentives/README.md``).

``monotone=True`` (the caller knows adding a player never lowers the utility): a sampled
Shapley estimate is projected onto ``{phi >= 0, sum phi = v(N) - v(empty)}``. That convex set
holds the exact values of a monotone game, so the Euclidean projection never moves an estimate
further from them, and no player gets a negative value from sampling noise (``svarm-cv``'s
fitted surrogate can leave one on games far from quadratic, e.g. thresholds; the permutation
methods average marginal contributions, which are >= 0 in such a game).

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
from .stopping import MaxEvaluations, MaxPermutations, StandardErrorBelow, StoppingRule
from .stratified import StratifiedCVSampler
from .utility import CachedUtility, Utility

METHODS = ("exact", "permutation", "tmc", "gtg", "svarm-cv", "loo", "banzhaf", "auto")
_OPTIONS = {"stopping", "truncation", "round_truncation", "samples", "weights", "monotone"}
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
    if method not in ("svarm-cv", "auto"):
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
    monotone: bool = False,
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
        monotone: the game is monotone: project sampled Shapley estimates onto the non-negative
            efficient set (module doc); IncentiveError if ``v(N) < v(empty)``.

    Example:
        >>> valuate(lambda s: float(len(s)), 20, method="tmc", rng=0).n_evaluations <= 2**20
        True
    """
    _check(utility, n, method, stopping, truncation, round_truncation, samples, weights)
    if method == "auto":
        method = auto_method(n, stopping.n if isinstance(stopping, MaxEvaluations) else None)
        weights = weights if method == "svarm-cv" else None
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
    if monotone:
        if gain < 0:
            raise IncentiveError(
                f"monotone=True, yet v(N) - v(empty) = {gain:.6g} < 0: the game is not monotone"
            )
        values = project_to_simplex(values, gain)
    return ValuationResult(values, err, u.evaluations, steps, converged, method)


def auto_method(n: int, budget: int | None) -> str:
    """The Shapley method for ``n`` players within ``budget`` distinct evaluations (None: no
    fixed budget): ``exact`` if ``2^n <= budget``, ``svarm-cv`` if ``n <= 16`` and ``budget >=
    2n + 2`` (or no budget), else ``gtg`` (module doc).

    Example:
        >>> auto_method(4, 32), auto_method(8, 32), auto_method(15, 24), auto_method(40, 500)
        ('exact', 'svarm-cv', 'gtg', 'gtg')
    """
    if budget is not None and 2**n <= budget:
        return "exact"
    if n <= MAX_EXACT and (budget is None or budget >= 2 * n + 2):
        return "svarm-cv"
    return "gtg"


def project_to_simplex(x: np.ndarray, total: float) -> np.ndarray:
    """Euclidean projection of ``x`` (n,) onto ``{y >= 0, sum y = total}`` (``total >= 0``),
    by sorting (Duchi et al. 2008).

    Example:
        >>> project_to_simplex(np.array([0.7, 0.5, -0.2]), 1.0).round(6).tolist()
        [0.6, 0.4, 0.0]
    """
    x = np.asarray(x, dtype=float)
    if total <= 0:
        return np.zeros_like(x)
    desc = np.sort(x)[::-1]
    cum = np.cumsum(desc) - total
    rho = np.nonzero(desc - cum / np.arange(1, x.size + 1) > 0)[0][-1]
    return np.clip(x - cum[rho] / (rho + 1), 0.0, None)


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
