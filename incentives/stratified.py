"""Stratified coalition sampling with full sample reuse and a regression control variate.

Shapley values in the form of Stratified SVARM (Kolpaczki et al. 2024), by coalition size s:

    phi_i = (v(N) - v(empty)) / n + 1/n sum_{s=1}^{n-1} D_is,
    D_is  = mean_{|S|=s, i in S} v(S) - mean_{|S|=s, i not in S} v(S)

(``sum_i D_is = 0`` for every s, so any estimate recentred to that is efficient). Each
evaluated coalition is a sample for every player at once, inside or outside it, with no
marginal-contribution pairs: one evaluation informs n strata estimates.
``StratifiedCVSampler`` (the ``svarm-cv`` method):

1. evaluates v(empty), v(N), every v({i}) and every v(N - i) (2n + 2 evaluations, as GTG's exact
   first and last strata): the sizes 1 and n - 1 are then exact;
2. draws coalitions of sizes 2..n-2 round robin over the sizes, uniformly and without
   replacement within a size (one new evaluation per step);
3. fits ``surrogate.fit_surrogate`` (a second-order model of the sub-model utility) to every
   evaluated coalition and uses it as a control variate: ``phi = phi(surrogate) +
   phi(v - surrogate)``, the first exact (the surrogate is evaluated on all 2^n coalitions, no
   utility call), the second estimated as above from the residuals of the evaluated coalitions.

Linearity of the Shapley value makes this exact once every coalition is evaluated, whatever the
surrogate. Because the surrogate is fitted to the same coalitions whose residuals are averaged
(a regression estimator, as GREG in survey sampling), the estimate is consistent but not exactly
unbiased; ``stderr`` is the residual part's stratified standard error with finite-population
correction, which ignores the surrogate's own fitting error. It needs n <= 16.

Example:
    >>> from incentives.utility import CachedUtility
    >>> u = CachedUtility(lambda s: float(len(s)) ** 0.5)
    >>> sampler = StratifiedCVSampler(u, 5, np.random.default_rng(0), np.ones(5))
    >>> values, _ = sampler.estimate()
    >>> values.round(4).tolist(), u.evaluations
    ([0.4472, 0.4472, 0.4472, 0.4472, 0.4472], 12)
"""

from __future__ import annotations

from math import comb

import numpy as np

from .surrogate import Surrogate, fit_surrogate, members
from .utility import CachedUtility

REFIT_GROWTH = 1.5  # stderr() refits the surrogate once the data grew by half since the last fit


def stratum_effects(masks: np.ndarray, values: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Estimated ``D_is`` (n, n + 1; columns 0 and n unused) and each player's variance of
    ``1/n sum_s D_is`` (n,), from coalitions ``masks`` (distinct bitmasks) with ``values``.

    A stratum side with no sample counts 0 (the control variate's own value stands) and makes
    the variance inf, as does one with a single sample of several; a fully enumerated side has
    variance 0. Each size's column is recentred to sum to 0 (efficiency).
    """
    masks, values = np.asarray(masks, dtype=np.int64), np.asarray(values, dtype=float)
    x = members(masks, n)
    size = x.sum(axis=1).astype(int)
    effects, variance = np.zeros((n, n + 1)), np.zeros(n)
    for s in range(1, n):
        sel = size == s
        inside, v = x[sel], values[sel] - (values[sel].mean() if sel.any() else 0.0)
        sides = []
        for member, population in ((inside, comb(n - 1, s - 1)), (1 - inside, comb(n - 1, s))):
            count = member.sum(axis=0)
            total, squares = member.T @ v, member.T @ v**2
            mean = np.divide(total, count, out=np.zeros(n), where=count > 0)
            spread = np.divide(
                squares - count * mean**2, count - 1, out=np.zeros(n), where=count > 1
            )
            var = np.where(count >= population, 0.0, np.inf)
            part = (count > 1) & (count < population)
            var[part] = np.maximum(spread[part], 0) / count[part] * (1 - count[part] / population)
            sides.append((mean, count, var))
        (mean_in, count_in, var_in), (mean_out, count_out, var_out) = sides
        d = np.where((count_in > 0) & (count_out > 0), mean_in - mean_out, 0.0)
        effects[:, s] = d - d.mean()
        variance += var_in + var_out
    return effects, variance / n**2


def _values(effects: np.ndarray, gain: float) -> np.ndarray:
    n = effects.shape[0]
    return gain / n + effects.sum(axis=1) / n


class StratifiedCVSampler:
    """The ``svarm-cv`` sampler (see module doc); ``weights`` are the aggregation weights."""

    def __init__(
        self, u: CachedUtility, n: int, gen: np.random.Generator, weights: np.ndarray
    ) -> None:
        self.u, self.n, self.weights = u, n, np.asarray(weights, dtype=float)
        full = (1 << n) - 1
        fixed = [0, full, *(1 << i for i in range(n)), *(full ^ (1 << i) for i in range(n))]
        self.masks: list[int] = []
        for mask in dict.fromkeys(fixed):  # n = 1: empty and N only
            self._evaluate(mask)
        every = np.arange(1 << n, dtype=np.int64)
        size = members(every, n).sum(axis=1)
        self.pools = [list(gen.permutation(every[size == s])) for s in range(2, n - 1)]
        self._turn = 0
        self._fit: Surrogate | None = None
        self._fitted_on = 0  # coalitions the current fit saw
        self._residuals: list[float] = []

    def _evaluate(self, mask: int) -> None:
        self.masks.append(mask)
        self.u(frozenset(i for i in range(self.n) if mask >> i & 1))

    def _value(self, mask: int) -> float:
        return self.u(frozenset(i for i in range(self.n) if mask >> i & 1))

    def step(self) -> None:
        """Evaluate one new coalition: the next size (round robin) that has any left."""
        for _ in range(len(self.pools)):
            pool = self.pools[self._turn % len(self.pools)]
            self._turn += 1
            if pool:
                mask = int(pool.pop())
                self._evaluate(mask)
                if self._fit is not None:
                    self._residuals.append(self._value(mask) - self._fit.predict([mask])[0])
                return

    def _refit(self) -> tuple[Surrogate, np.ndarray, np.ndarray]:
        masks = np.array(self.masks, dtype=np.int64)
        values = np.array([self._value(m) for m in self.masks])
        fit = fit_surrogate(masks, values, values[0], self.weights)
        return fit, masks, values - fit.predict(masks)

    def stderr(self) -> np.ndarray:
        """(n,) standard error of the residual part; the surrogate is refitted as data grows."""
        if self._fit is None or len(self.masks) >= REFIT_GROWTH * self._fitted_on:
            self._fit, _, residuals = self._refit()
            self._fitted_on, self._residuals = len(self.masks), residuals.tolist()
        _, variance = stratum_effects(np.array(self.masks), np.array(self._residuals), self.n)
        return np.sqrt(variance)

    def estimate(self) -> tuple[np.ndarray, np.ndarray]:
        """(values, stderr), each (n,), from a surrogate fitted to every evaluated coalition."""
        fit, masks, residuals = self._refit()
        every = np.arange(1 << self.n, dtype=np.int64)
        model = fit.predict(every)
        exact_part = _values(stratum_effects(every, model, self.n)[0], model[-1] - model[0])
        effects, variance = stratum_effects(masks, residuals, self.n)
        return exact_part + _values(effects, residuals[1] - residuals[0]), np.sqrt(variance)
