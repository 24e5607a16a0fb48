"""The per-user accountant against closed forms: the analytic Gaussian mechanism (Balle and Wang
2018), the exact composition of randomized response (Kairouz et al. 2015), Laplace's epsilon."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize, stats

from agents.accountant import UserAccountant, gaussian, laplace, pure, unbounded
from agents.privacy import PrivacyError

DELTA = 1e-5


def analytic_gaussian_epsilon(sigma: float, delta: float) -> float:
    """The exact epsilon of the Gaussian mechanism (sensitivity 1, std sigma) at delta."""

    def gap(eps: float) -> float:
        return (
            stats.norm.cdf(1 / (2 * sigma) - eps * sigma)
            - math.exp(eps) * stats.norm.cdf(-1 / (2 * sigma) - eps * sigma)
            - delta
        )

    return optimize.brentq(gap, 0.0, 100.0)


def composed_rr_epsilon(eps: float, k: int, delta: float) -> float:
    """The exact epsilon of k-fold eps-randomized response at delta."""
    p = math.exp(eps) / (1 + math.exp(eps))
    j = np.arange(k + 1)
    mass, loss = stats.binom.pmf(j, k, p), eps * (2 * j - k)

    def gap(e: float) -> float:
        return float(np.sum(mass * np.clip(1 - np.exp(e - loss), 0, None))) - delta

    return 0.0 if gap(0.0) <= 0 else optimize.brentq(gap, 0.0, k * eps + 1)


@pytest.mark.parametrize("sigma", [0.8, 1.0, 2.0, 5.0])
def test_one_gaussian_matches_the_analytic_gaussian_mechanism(sigma: float) -> None:
    acc = UserAccountant(1, delta=DELTA)
    acc.charge([0], gaussian(sigma))
    exact = analytic_gaussian_epsilon(sigma, DELTA)
    got = acc.epsilons()[0]
    assert exact - 1e-9 <= got <= exact + 0.02  # an upper bound, tight to the discretisation


def test_k_gaussians_compose_to_one_with_sigma_over_sqrt_k() -> None:
    acc = UserAccountant(1, delta=DELTA)
    acc.charge([0], gaussian(3.0), times=9)
    assert acc.epsilons()[0] == pytest.approx(analytic_gaussian_epsilon(1.0, DELTA), abs=0.03)


@pytest.mark.parametrize(("eps", "k"), [(1.0, 1), (0.5, 10), (0.1, 50)])
def test_pure_dp_composes_exactly_as_randomized_response(eps: float, k: int) -> None:
    acc = UserAccountant(1, delta=DELTA)
    acc.charge([0], pure(eps), times=k)
    exact = composed_rr_epsilon(eps, k, DELTA)
    assert exact - 1e-9 <= acc.epsilons()[0] <= exact + 0.02
    assert acc.epsilons()[0] <= k * eps + 1e-9  # never worse than basic composition


def test_one_laplace_release_costs_its_epsilon() -> None:
    acc = UserAccountant(1, delta=DELTA)
    acc.charge([0], laplace(0.7))
    assert acc.epsilons()[0] == pytest.approx(0.7, abs=0.01)


def test_no_noise_is_infinite_and_never_fits_a_finite_budget() -> None:
    acc = UserAccountant(2, budget=8.0)
    assert not acc.charge([0], unbounded("raw"))[0]
    assert acc.epsilons().tolist() == [0.0, 0.0]
    free = UserAccountant(2)  # no budget: the release happens and is reported as it is
    assert free.charge([0], gaussian(0.0, "no noise"))[0]
    assert free.epsilons()[0] == math.inf and free.summary()["epsilon_max"] == math.inf
    assert laplace(math.inf).kind == pure(math.inf).kind == "unbounded"


def test_budget_stops_a_user_and_records_it() -> None:
    acc = UserAccountant(3, budget=3.0)
    charged = [acc.charge([0, 1], gaussian(2.0, "fed"))[0] for _ in range(5)]
    assert charged[0] and not all(charged)
    assert acc.epsilons()[0] <= 3.0 and acc.epsilons()[2] == 0.0
    summary = acc.summary()
    assert summary["refused"]["fed"] == 2 * charged.count(False)
    assert summary["uses"]["fed"] == 2 * charged.count(True)
    assert (
        summary["epsilon_max"] <= 3.0 < summary["epsilon_max"] + gaussian(2.0).epsilon_once(DELTA)
    )


histories = st.lists(
    st.tuples(
        st.sampled_from(["gaussian", "laplace", "pure"]),
        st.floats(0.2, 5.0),
        st.integers(1, 20),
    ),
    min_size=1,
    max_size=3,
)
MAKE = {"gaussian": gaussian, "laplace": laplace, "pure": pure}


@settings(max_examples=25, deadline=None)
@given(histories)
def test_rdp_cross_check_bounds_pld_and_charging_never_lowers_epsilon(history) -> None:
    acc = UserAccountant(1, delta=DELTA)
    last = 0.0
    for kind, param, times in history:
        acc.charge([0], MAKE[kind](param), times=times)
        now = acc.epsilons()[0]
        assert now >= last - 1e-9
        last = now
    assert acc.epsilons(method="rdp")[0] >= last - 0.05


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: UserAccountant(0), "n_users"),
        (lambda: UserAccountant(2, delta=0), "delta"),
        (lambda: UserAccountant(2, budget=0), "budget"),
        (lambda: UserAccountant(2).charge([2], pure(1.0)), "user ids"),
        (lambda: UserAccountant(2).charge([0], pure(1.0), times=0), "times"),
        (lambda: gaussian(-1.0), "noise_multiplier"),
        (lambda: gaussian(math.nan), "noise_multiplier"),
        (lambda: laplace(0.0), "epsilon"),
        (lambda: pure(math.nan), "epsilon"),
        (lambda: UserAccountant(2).epsilons(method="gdp"), "method"),
    ],
)
def test_bad_arguments_are_named(call, match: str) -> None:
    with pytest.raises(PrivacyError, match=match):
        call()
