"""Standard errors are computed only for stopping rules that read them (issue 18, svarm-cv).

A budget-only run of ``svarm-cv`` used to compute the standard error after every step, a pass
over every evaluated coalition, so its work grew with the square of the budget. The values
must not change: the standard error is a read-out, never an input of the estimate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from incentives import (
    MaxEvaluations,
    MaxPermutations,
    StandardErrorBelow,
    StoppingRule,
    valuate,
)

N = 6
WEIGHTS = np.arange(1.0, N + 1)


def utility(s: frozenset) -> float:
    """A concave game with a pairwise term: sampled estimates are not exact."""
    idx = sorted(s)
    return math.sqrt(WEIGHTS[idx].sum()) + 0.1 * len(idx) ** 2 / N


@dataclass(frozen=True)
class Recorder(StoppingRule):
    """Stops after ``n`` steps and records the stderr it was shown."""

    n: int
    seen: list
    needs_stderr: bool = False

    def done(self, *, permutations: int, stderr: float, **_: float) -> bool:
        self.seen.append(stderr)
        return permutations >= self.n


def test_needs_stderr_composes():
    assert not MaxEvaluations(5).needs_stderr and not MaxPermutations(5).needs_stderr
    assert not (MaxEvaluations(5) | MaxPermutations(5)).needs_stderr
    assert (MaxEvaluations(5) | StandardErrorBelow(0.1)).needs_stderr
    assert StandardErrorBelow(0.1).needs_stderr


def test_a_rule_of_ones_own_gets_the_real_stderr_unless_it_declines():
    class Own(StoppingRule):  # declares nothing: the safe default is to compute stderr
        def __init__(self) -> None:
            self.seen: list[float] = []

        def done(self, *, permutations: int, stderr: float, **_: float) -> bool:
            self.seen.append(stderr)
            return permutations >= 3

    own = Own()
    valuate(utility, N, method="svarm-cv", rng=0, stopping=own, weights=WEIGHTS)
    assert own.seen and all(not math.isnan(e) for e in own.seen)
    declined = Recorder(3, [])
    valuate(utility, N, method="svarm-cv", rng=0, stopping=declined, weights=WEIGHTS)
    assert declined.seen and all(math.isnan(e) for e in declined.seen)


@settings(max_examples=15, deadline=None)
@given(
    st.sampled_from(["svarm-cv", "permutation", "tmc", "gtg"]),
    st.integers(2 * N + 3, 40),
    st.integers(0, 2**32 - 1),
)
def test_skipping_stderr_leaves_the_values_unchanged(method, budget, seed):
    # StandardErrorBelow(0) never fires (a stderr is never < 0) but makes the run compute the
    # standard error after every step, as every run did before.
    options = {"weights": WEIGHTS} if method == "svarm-cv" else {}
    lean = valuate(utility, N, method=method, rng=seed, stopping=MaxEvaluations(budget), **options)
    full = valuate(
        utility,
        N,
        method=method,
        rng=seed,
        stopping=MaxEvaluations(budget) | StandardErrorBelow(0.0, min_permutations=0),
        **options,
    )
    np.testing.assert_array_equal(lean.values, full.values)
    np.testing.assert_array_equal(lean.stderr, full.stderr)
    assert lean.n_evaluations == full.n_evaluations
