"""Shapley values on games with known answers, the axioms, and the sampled methods."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from incentives import (
    METHODS,
    IncentiveError,
    MaxEvaluations,
    MaxPermutations,
    StandardErrorBelow,
    shapley_values,
    valuate,
)


def glove(s):  # player 0 holds a left glove, 1 and 2 right gloves
    return float(min(len(s & {0}), len(s & {1, 2})))


def airport(costs):
    return lambda s: float(max((costs[i] for i in s), default=0.0))


def brute_force(game, n):
    """Mean marginal contribution over all n! orders (the definition)."""
    phi = np.zeros(n)
    for order in itertools.permutations(range(n)):
        before: set[int] = set()
        for i in order:
            phi[i] += game(frozenset(before | {i})) - game(frozenset(before))
            before.add(i)
    return phi / math.factorial(n)


@st.composite
def games(draw, max_n=6):
    """A random game as a lookup table over all coalitions."""
    n = draw(st.integers(1, max_n))
    table = {
        frozenset(c): draw(st.floats(-10, 10))
        for r in range(n + 1)
        for c in itertools.combinations(range(n), r)
    }
    return n, table


def test_glove_game():
    np.testing.assert_allclose(shapley_values(glove, 3), [2 / 3, 1 / 6, 1 / 6])


def test_symmetric_majority_voting():
    vote = lambda s: float(len(s) >= 3)  # noqa: E731
    np.testing.assert_allclose(shapley_values(vote, 5), [0.2] * 5)


def test_airport_game():
    # Littlechild & Owen: each runway segment's cost is shared equally by the planes needing it.
    costs = [1.0, 3.0, 6.0]
    np.testing.assert_allclose(shapley_values(airport(costs), 3), [1 / 3, 1 / 3 + 1, 1 / 3 + 1 + 3])


def test_negative_marginal_contribution():
    v = {(): 0, (0,): 4, (1,): 2, (2,): 0, (0, 1): 6, (0, 2): 2, (1, 2): 2, (0, 1, 2): 4}
    game = lambda s: float(v[tuple(sorted(s))])  # noqa: E731
    phi = shapley_values(game, 3)
    # by hand: player 2's marginals 0, -2, 0, -2 with weights 1/3, 1/6, 1/6, 1/3
    np.testing.assert_allclose(phi, [3.0, 2.0, -1.0])


def test_exact_evaluates_each_coalition_once():
    calls = []
    res = valuate(lambda s: calls.append(s) or float(len(s) ** 2), 5)
    assert (
        res.n_evaluations == len(calls) == 32 and res.converged and res.stderr.tolist() == [0] * 5
    )


@settings(max_examples=30)
@given(games(max_n=5))
def test_exact_matches_the_definition(game):
    n, table = game
    np.testing.assert_allclose(
        shapley_values(table.__getitem__, n), brute_force(table.__getitem__, n), atol=1e-9
    )


@settings(max_examples=40)
@given(games())
def test_efficiency(game):
    n, table = game
    phi = shapley_values(table.__getitem__, n)
    assert phi.sum() == pytest.approx(table[frozenset(range(n))] - table[frozenset()], abs=1e-9)


@settings(max_examples=30)
@given(games(max_n=5), st.integers(0, 2**32 - 1))
def test_permutation_sampling_is_efficient_for_every_sample(game, seed):
    # every sampled permutation's marginals add up to v(N) - v(empty)
    n, table = game
    res = valuate(table.__getitem__, n, method="permutation", rng=seed, stopping=MaxPermutations(3))
    assert res.values.sum() == pytest.approx(
        table[frozenset(range(n))] - table[frozenset()], abs=1e-9
    )


@given(st.integers(3, 6), st.integers(0, 1000), st.sampled_from(["exact", "banzhaf"]))
def test_symmetry_and_null_player(n, seed, method):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=n)
    w[1] = w[0]  # 0 and 1 are symmetric
    null = n - 1
    game = lambda s: float(sum(w[i] for i in s if i != null) ** 2)  # noqa: E731
    phi = shapley_values(game, n, method=method)
    assert phi[0] == pytest.approx(phi[1], abs=1e-9)
    assert phi[null] == pytest.approx(0.0, abs=1e-9)


@settings(max_examples=30)
@given(games(max_n=4), games(max_n=4), st.floats(-3, 3), st.floats(-3, 3))
def test_linearity(g, h, a, b):
    n = min(g[0], h[0])
    u = lambda s: g[1][s]  # noqa: E731
    v = lambda s: h[1][s]  # noqa: E731
    mixed = shapley_values(lambda s: a * u(s) + b * v(s), n)
    expected = a * shapley_values(u, n) + b * shapley_values(v, n)
    np.testing.assert_allclose(mixed, expected, atol=1e-9)


@settings(max_examples=30)
@given(
    st.lists(st.floats(-5, 5), min_size=1, max_size=20),
    st.sampled_from(["permutation", "tmc", "gtg"]),
    st.integers(0, 1000),
)
def test_sampled_methods_are_exact_on_additive_games(w, method, seed):
    # every marginal of player i is w_i: any sample gives the exact answer (gtg's between-round
    # truncation, which zeroes a round of negligible total gain, is turned off)
    game = lambda s: float(sum(w[i] for i in s))  # noqa: E731
    res = valuate(
        game,
        len(w),
        method=method,
        rng=seed,
        truncation=0.0,
        round_truncation=0.0,
        stopping=MaxPermutations(2),
    )
    np.testing.assert_allclose(res.values, w, atol=1e-9)


# A 12-player airport game: exact values 1/12 ... 3.10 (the largest), 4,096 coalitions.
COSTS = [float(c) for c in range(1, 13)]
TOLERANCE = 0.3  # stated tolerance for 300 sampled permutations (about 10% of the largest)


@pytest.mark.parametrize("method", ["permutation", "tmc", "gtg"])
def test_monte_carlo_converges_to_exact(method):
    exact = shapley_values(airport(COSTS), 12)
    res = valuate(airport(COSTS), 12, method=method, rng=0, stopping=MaxPermutations(300))
    np.testing.assert_allclose(res.values, exact, atol=TOLERANCE)
    assert res.permutations == 300 and res.n_evaluations < 2**12
    assert np.all(res.stderr < TOLERANCE)


def test_error_shrinks_with_more_samples():
    exact = shapley_values(airport(COSTS), 12)
    errors = [
        np.abs(
            valuate(airport(COSTS), 12, method="gtg", rng=1, stopping=MaxPermutations(k)).values
            - exact
        ).mean()
        for k in (12, 480)
    ]
    assert errors[1] < errors[0]


def test_stopping_rules_and_counts():
    game = airport(COSTS)
    budget = valuate(game, 12, method="tmc", rng=0, stopping=MaxEvaluations(200))
    assert 200 <= budget.n_evaluations < 200 + 12 and not budget.converged
    accurate = valuate(
        game, 12, method="gtg", rng=0, stopping=StandardErrorBelow(0.05, 24) | MaxPermutations(5000)
    )
    assert accurate.converged and accurate.stderr.max() < 0.05 and accurate.permutations >= 24


def test_a_rule_that_cannot_fire_still_stops():
    # 3 players have 8 coalitions: a budget of 64 evaluations can never be reached; once all
    # are cached the values are exact.
    res = valuate(glove, 3, method="tmc", stopping=MaxEvaluations(64), rng=0)
    np.testing.assert_allclose(res.values, [2 / 3, 1 / 6, 1 / 6])
    assert res.converged and res.n_evaluations == 8


@pytest.mark.parametrize("method", METHODS)
def test_seeded_runs_are_identical(method):
    game = airport(COSTS[:8])
    a = valuate(game, 8, method=method, rng=7, stopping=MaxPermutations(20))
    b = valuate(game, 8, method=method, rng=np.random.default_rng(7), stopping=MaxPermutations(20))
    np.testing.assert_array_equal(a.values, b.values)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("n", [1, 2, 3])
def test_tiny_games(method, n):
    game = airport([2.0, 5.0, 9.0][:n])
    exact = shapley_values(game, n)
    got = shapley_values(game, n, method=method, rng=0)
    if method in ("exact", "permutation", "gtg", "svarm-cv") or n == 1:
        np.testing.assert_allclose(got, exact, atol=1e-9)
    assert got.shape == (n,)


def test_gtg_skips_a_round_without_gain():
    res = valuate(lambda s: 1.0, 5, method="gtg")
    assert res.values.tolist() == [0.0] * 5 and res.n_evaluations == 2


def test_loo_and_banzhaf():
    assert shapley_values(glove, 3, method="loo").tolist() == [1.0, 0.0, 0.0]
    np.testing.assert_allclose(shapley_values(glove, 3, method="banzhaf"), [0.75, 0.25, 0.25])
    sampled = valuate(lambda s: float(len(s)), 20, method="banzhaf", rng=0, samples=4000)
    np.testing.assert_allclose(sampled.values, 1.0, atol=4 * sampled.stderr.max())
    assert sampled.n_evaluations <= 4000


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "owen"}, "allowed: exact"),
        ({"n": 17}, "n <= 16"),
        ({"n": 0}, "n must be an integer"),
        ({"n": 2.5}, "n must be an integer"),
        ({"truncation": 1.5}, "truncation"),
        ({"round_truncation": -1}, "round_truncation"),
        ({"samples": 0}, "samples"),
        ({"stopping": 10}, "StoppingRule"),
        ({"budget": 10}, "unknown options"),
    ],
)
def test_bad_arguments(kwargs, match):
    args = {"n": 3, **kwargs}
    n = args.pop("n")
    with pytest.raises(IncentiveError, match=match):
        shapley_values(glove, n, **args)
    with pytest.raises(ValueError):  # IncentiveError is a ValueError
        shapley_values("not a game", 3)
