"""Shapley values on games with known answers, axioms, sampled methods, FL honesty checks."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from incentives import (
    IncentiveError,
    MaxEvaluations,
    MaxPermutations,
    fl_utility,
    shapley_values,
    valuate,
)


def glove(s):  # player 0 holds a left glove, 1 and 2 right gloves
    return float(min(len(s & {0}), len(s & {1, 2})))


def airport(costs):
    return lambda s: float(max((costs[i] for i in s), default=0.0))


def test_glove_game():
    np.testing.assert_allclose(shapley_values(glove, 3), [2 / 3, 1 / 6, 1 / 6])


def test_symmetric_majority_voting():
    vote = lambda s: float(len(s) >= 3)  # noqa: E731
    np.testing.assert_allclose(shapley_values(vote, 5), [0.2] * 5)


def test_airport_game():
    # Littlechild & Owen: each segment's cost is shared equally by the planes that need it.
    costs = [1.0, 3.0, 6.0]
    np.testing.assert_allclose(shapley_values(airport(costs), 3), [1 / 3, 1 / 3 + 1, 1 / 3 + 1 + 3])


def test_negative_marginal_contribution():
    v = {(): 0, (0,): 4, (1,): 2, (2,): 0, (0, 1): 6, (0, 2): 2, (1, 2): 2, (0, 1, 2): 4}
    game = lambda s: float(v[tuple(sorted(s))])  # noqa: E731
    phi = shapley_values(game, 3)
    # hand-computed: phi_2 = (0 - 2 - 0 - 2) averaged with weights 1/3, 1/6, 1/6, 1/3
    np.testing.assert_allclose(phi, [3.0, 2.0, -1.0])
    assert phi.sum() == pytest.approx(4.0)


@st.composite
def games(draw):
    n = draw(st.integers(1, 6))
    table = {
        frozenset(c): draw(st.floats(-10, 10))
        for r in range(n + 1)
        for c in itertools.combinations(range(n), r)
    }
    return n, table


@settings(max_examples=40)
@given(games())
def test_efficiency(game):
    n, table = game
    phi = shapley_values(table.__getitem__, n)
    assert phi.sum() == pytest.approx(table[frozenset(range(n))] - table[frozenset()], abs=1e-9)


@given(st.integers(3, 6), st.integers(0, 1000))
def test_symmetry_and_null_player(n, seed):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=n)
    w[1] = w[0]  # 0 and 1 are symmetric
    null = n - 1
    game = lambda s: float(sum(w[i] for i in s if i != null) ** 2)  # noqa: E731
    phi = shapley_values(game, n)
    assert phi[0] == pytest.approx(phi[1], abs=1e-9)
    assert phi[null] == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("method", ["permutation", "tmc", "gtg"])
def test_monte_carlo_converges_to_exact(method):
    costs = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0]
    exact = shapley_values(airport(costs), 12)
    res = valuate(airport(costs), 12, method=method, rng=0, stopping=MaxPermutations(300))
    np.testing.assert_allclose(res.values, exact, atol=0.3)  # stated tolerance (max value 3.1)
    assert res.permutations == 300 and res.n_evaluations < 2**12


def test_gtg_skips_a_round_without_gain():
    res = valuate(lambda s: 1.0, 5, method="gtg")
    assert res.values.tolist() == [0.0] * 5 and res.n_evaluations == 2


def test_loo_and_banzhaf():
    assert shapley_values(glove, 3, method="loo").tolist() == [1.0, 0.0, 0.0]
    np.testing.assert_allclose(shapley_values(glove, 3, method="banzhaf"), [0.75, 0.25, 0.25])
    sampled = valuate(lambda s: float(len(s)), 20, method="banzhaf", rng=0, samples=4000)
    np.testing.assert_allclose(sampled.values, 1.0, atol=0.3)  # ~4 standard errors


def test_bad_arguments():
    with pytest.raises(IncentiveError, match="allowed: exact"):
        shapley_values(glove, 3, method="owen")
    with pytest.raises(IncentiveError, match="n <= 16"):
        shapley_values(glove, 17)


def _fl_round(updates):
    target = np.array([1.0, -2.0, 0.5])
    evaluate = lambda p: -float(np.sum((p["w"] - target) ** 2))  # noqa: E731
    return fl_utility(
        {"w": np.zeros(3)}, [{"w": u} for u in updates], [1.0] * len(updates), evaluate
    )


def test_honesty_free_rider_and_noise_earn_least():
    rng = np.random.default_rng(0)
    target = np.array([1.0, -2.0, 0.5])
    honest = [target + 0.1 * rng.normal(size=3) for _ in range(3)]
    free_rider = np.zeros(3)
    noise = 3 * rng.normal(size=3)
    phi = shapley_values(_fl_round([*honest, free_rider, noise]), 5)
    assert phi[3] < min(phi[:3]) and phi[4] < min(phi[:3])
    assert phi[4] < 0  # a harmful update has negative value: it earns nothing


def test_honesty_duplicate_does_not_pay_double():
    target = np.array([1.0, -2.0, 0.5])
    a, b = target * 0.9, target * 1.1
    solo = shapley_values(_fl_round([a, b]), 2)
    duped = shapley_values(_fl_round([a, b, a]), 3)
    assert duped[0] + duped[2] < 2 * solo[0]  # two copies share, not double, the credit


def _fl_round_weighted(updates, weights):
    target = np.array([1.0, -2.0, 0.5])
    evaluate = lambda p: -float(np.sum((p["w"] - target) ** 2))  # noqa: E731
    return fl_utility({"w": np.zeros(3)}, [{"w": u} for u in updates], weights, evaluate)


def test_honesty_scaled_update_does_not_pay_more():
    target = np.array([1.0, -2.0, 0.5])
    rng = np.random.default_rng(1)
    others = [target + 0.2 * rng.normal(size=3) for _ in range(3)]
    mine = target + 0.2 * rng.normal(size=3)
    honest = shapley_values(_fl_round_weighted([*others, mine], [1.0] * 4), 4)[3]
    scaled = shapley_values(_fl_round_weighted([*others, 3 * mine], [1.0] * 4), 4)[3]
    assert scaled < honest


def test_honesty_sybil_split_is_a_known_weakness():
    target = np.array([1.0, -2.0, 0.5])
    rng = np.random.default_rng(2)
    others = [target + 0.3 * rng.normal(size=3) for _ in range(3)]
    noise = rng.normal(size=(2, 3))
    whole = target + 0.3 * noise.mean(axis=0)  # the mean of both halves' noise: all the data
    halves = [target + 0.3 * noise[0], target + 0.3 * noise[1]]
    honest = shapley_values(_fl_round_weighted([*others, whole], [1.0, 1.0, 1.0, 2.0]), 4)[3]
    split = shapley_values(_fl_round_weighted([*others, *halves], [1.0] * 5), 5)[3:].sum()
    # Shapley values are not sybil-proof (Ohta et al. 2008): splitting one client's data over
    # two identities earns ~1.5x here. Recorded as a limitation; a defence is future work.
    assert honest < split < 2 * honest


def test_budget_larger_than_the_game_still_stops():
    # 3 players have 8 coalitions: a budget of 64 evaluations can never be reached, and
    # once all are cached the values are exact.
    res = valuate(glove, 3, method="tmc", stopping=MaxEvaluations(64), rng=0)
    np.testing.assert_allclose(res.values, [2 / 3, 1 / 6, 1 / 6])  # exact from the cache
    assert res.converged and res.n_evaluations == 8
