"""The DP-SGD accountant (contract of shared/DESIGN.md), its inverse, randomized response."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.privacy import (
    PrivacyError,
    debiased_rate,
    epsilon,
    noise_multiplier_for,
    randomized_response,
    report_noisy_max,
)

MNIST = (1.1, 256 / 60000, 60 * 60000 // 256, 1e-5)


def test_published_mnist_value():
    from dp_accounting.rdp import rdp_privacy_accountant as rdp

    z, q, steps, delta = MNIST
    orders = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64))  # TF Privacy's
    curve = rdp._compute_rdp_poisson_subsampled_gaussian(q, z, orders) * steps
    classic = min(c + math.log(1 / delta) / (o - 1) for c, o in zip(curve, orders, strict=True))
    assert classic == pytest.approx(3.01, abs=0.01)  # the tutorial's published epsilon
    assert epsilon(*MNIST) == pytest.approx(2.60, abs=0.01)  # tighter conversion, same curve
    assert epsilon(*MNIST, accountant="prv") == pytest.approx(2.39, abs=0.02)
    assert epsilon(*MNIST, accountant="prv") <= epsilon(*MNIST)


@settings(max_examples=15)
@given(st.floats(0.6, 3.0), st.floats(0.001, 0.1), st.integers(1, 500))
def test_epsilon_monotone(z, q, steps):
    e = epsilon(z, q, steps, 1e-5)
    assert epsilon(z * 1.2, q, steps, 1e-5) <= e + 1e-9  # more noise, less epsilon
    assert epsilon(z, q, steps + 10, 1e-5) >= e - 1e-9  # more steps, more epsilon


@pytest.mark.parametrize("target", [1.0, 3.0, 8.0])
def test_inverse(target):
    z = noise_multiplier_for(target, 0.01, 1000, 1e-5)
    assert epsilon(z, 0.01, 1000, 1e-5) <= target
    assert epsilon(z * 0.98, 0.01, 1000, 1e-5) > target * 0.99


def test_edge_cases_and_errors():
    assert epsilon(1.0, 0.1, 0, 1e-5) == 0.0
    assert epsilon(0.0, 0.1, 10, 1e-5) == math.inf
    with pytest.raises(PrivacyError, match="sample_rate"):
        epsilon(1.0, 0.0, 10, 1e-5)
    with pytest.raises(PrivacyError, match="delta"):
        epsilon(1.0, 0.1, 10, 1.0)
    with pytest.raises(PrivacyError, match="accountant"):
        epsilon(1.0, 0.1, 10, 1e-5, accountant="gdp")


def test_randomized_response_is_unbiased_after_debiasing():
    clicks = (np.random.default_rng(0).random(200_000) < 0.1).astype(int)
    reports = randomized_response(clicks, 1.0, rng=1)
    assert 0.2 < reports.mean() < 0.4  # heavily noised
    assert debiased_rate(reports, 1.0) == pytest.approx(0.1, abs=0.01)
    with pytest.raises(PrivacyError, match="0 or 1"):
        randomized_response(np.array([2]), 1.0)


@given(st.lists(st.integers(0, 1), min_size=1, max_size=50), st.integers(0, 2**32 - 1))
def test_randomized_response_at_infinite_epsilon_reports_the_truth(clicks, seed):
    c = np.array(clicks)
    np.testing.assert_array_equal(randomized_response(c, math.inf, rng=seed), c)
    np.testing.assert_array_equal(randomized_response(c, 1e4, rng=seed), c)  # no overflow
    assert debiased_rate(c, math.inf) == pytest.approx(c.mean())
    for bad in (0.0, -1.0, math.nan):
        with pytest.raises(PrivacyError, match="inf: no randomization"):
            randomized_response(c, bad)


def test_report_noisy_max_follows_the_exponential_mechanism():
    """P(j) = softmax(epsilon s_j / (2 sensitivity)): the closed form of Gumbel-max."""
    scores, eps, sens = np.array([0.2, 0.5, 0.9]), 2.0, 1.0
    picks = report_noisy_max(np.tile(scores, (200_000, 1)), eps, sens, rng=3)
    expected = np.exp(eps * scores / (2 * sens))
    expected /= expected.sum()
    np.testing.assert_allclose(np.bincount(picks, minlength=3) / picks.size, expected, atol=4e-3)
    assert report_noisy_max(scores, math.inf, sens, rng=0) == 2
    for bad in ((scores, 0.0, 1.0), (scores, 1.0, 0.0), (np.array([np.nan, 1.0]), 1.0, 1.0)):
        with pytest.raises(PrivacyError):
            report_noisy_max(*bad, rng=0)


@given(st.lists(st.floats(-10, 10), min_size=2, max_size=8), st.floats(0.01, 50.0))
def test_report_noisy_max_ratio_bound(scores, eps):
    """epsilon-DP: moving every score by at most the sensitivity changes no probability by more
    than e^epsilon (checked on the closed form the sampler follows)."""
    s = np.array(scores)
    shifted = s + np.random.default_rng(0).uniform(-1, 1, s.size)  # sensitivity 1

    def probs(x):
        z = np.exp(eps * (x - x.max()) / 2)
        return z / z.sum()

    assert (probs(s) / probs(shifted)).max() <= math.exp(eps) * (1 + 1e-9)
