"""Stopping rules for sampled valuation, small objects combinable with ``|`` (pyDVL style).

Example:
    >>> rule = MaxPermutations(100) | StandardErrorBelow(0.01, min_permutations=20)
    >>> rule.done(permutations=10, evaluations=50, stderr=0.001)
    False
"""

from __future__ import annotations

from dataclasses import dataclass


class StoppingRule:
    """Decides, after each sampled permutation, whether a sampler may stop.

    ``needs_stderr``: whether ``done`` reads ``stderr``. Samplers compute the standard error
    only for rules that need it (for ``svarm-cv`` it costs a pass over every evaluated
    coalition, which made budget-only runs quadratic in the budget); other rules see
    ``stderr = nan``. A rule of one's own that does not declare it gets the real value.
    """

    needs_stderr: bool = True

    def done(self, *, permutations: int, evaluations: int, stderr: float) -> bool:
        raise NotImplementedError

    def converged(self, *, permutations: int, evaluations: int, stderr: float) -> bool:
        """Whether stopping now means the estimate met its accuracy goal (not just a budget)."""
        return False

    def __or__(self, other: StoppingRule) -> StoppingRule:
        return AnyOf(self, other)


@dataclass(frozen=True)
class AnyOf(StoppingRule):
    a: StoppingRule
    b: StoppingRule

    @property
    def needs_stderr(self) -> bool:  # type: ignore[override]
        return self.a.needs_stderr or self.b.needs_stderr

    def done(self, **state: float) -> bool:
        return self.a.done(**state) or self.b.done(**state)

    def converged(self, **state: float) -> bool:
        return self.a.converged(**state) or self.b.converged(**state)


@dataclass(frozen=True)
class MaxPermutations(StoppingRule):
    """Stop after this many sampled permutations."""

    n: int
    needs_stderr = False

    def done(self, *, permutations: int, **_: float) -> bool:
        return permutations >= self.n


@dataclass(frozen=True)
class MaxEvaluations(StoppingRule):
    """Stop once the utility has been evaluated this many times (distinct coalitions)."""

    n: int
    needs_stderr = False

    def done(self, *, evaluations: int, **_: float) -> bool:
        return evaluations >= self.n


@dataclass(frozen=True)
class StandardErrorBelow(StoppingRule):
    """Stop when every value's standard error is below ``tol`` (after a minimum of samples)."""

    tol: float
    min_permutations: int = 30

    def done(self, *, permutations: int, stderr: float, **_: float) -> bool:
        return permutations >= self.min_permutations and stderr < self.tol

    def converged(self, **state: float) -> bool:
        return self.done(**state)
