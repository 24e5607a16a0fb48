"""DP-SGD: exact per-example gradients, every one clipped, calibrated noise, training plans."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from agents import AgentError, epsilon, plan
from agents.dp_sgd import (
    clip_per_example,
    per_example_gradients,
    per_example_norms,
    private_gradient,
)


def _loss(p, x, y):
    return ((x @ p["w"] + p["b"]).sum() - y) ** 2


def _batch(seed: int, n: int = 5):
    g = torch.Generator().manual_seed(seed)
    params = {"w": torch.randn(3, 2, generator=g), "b": torch.randn(2, generator=g)}
    return params, torch.randn(n, 3, generator=g) * 10, torch.randn(n, generator=g)


def test_per_example_gradients_match_one_at_a_time():
    params, x, y = _batch(0)
    grads, losses = per_example_gradients(_loss, params, x, y)
    for i in range(len(x)):
        one = torch.func.grad(_loss)(params, x[i], y[i])
        for k in params:
            torch.testing.assert_close(grads[k][i], one[k])
        assert losses[i] == pytest.approx(float(_loss(params, x[i], y[i])), rel=1e-5)


@given(st.integers(0, 10_000), st.floats(0.01, 10.0), st.integers(1, 8))
def test_every_per_example_gradient_is_clipped(seed, clip, n):
    params, x, y = _batch(seed, n)
    grads, _ = per_example_gradients(_loss, params, x, y)
    before = per_example_norms(grads)
    after = per_example_norms(clip_per_example(grads, clip))
    assert torch.all(after <= clip * (1 + 1e-5))
    small = before <= clip
    torch.testing.assert_close(after[small], before[small])  # short ones untouched
    # and without noise the private gradient is the mean of the clipped ones
    out = private_gradient(
        grads,
        params,
        max_grad_norm=clip,
        noise_multiplier=0.0,
        expected_batch_size=n,
        generator=torch.Generator(),
    )
    total = torch.cat([v.flatten() for v in out.values()]).norm()
    assert total <= clip * (1 + 1e-5)


def _naive_private_gradient(params, x, y, clip, z, expected, seed):
    """DP-SGD's gradient one example at a time, in float64: grad, flatten, clip, sum, noise."""
    total = {k: torch.zeros(v.shape, dtype=torch.float64) for k, v in params.items()}
    for i in range(len(x)):
        one = torch.func.grad(_loss)(params, x[i], y[i])
        norm = math.sqrt(sum(float((g.double() ** 2).sum()) for g in one.values()))
        for k in params:
            total[k] += one[k].double() * min(1.0, clip / (norm + 1e-12))
    noise = torch.Generator().manual_seed(seed)
    return {
        k: (total[k] + z * clip * torch.randn(v.shape, generator=noise).double()) / expected
        for k, v in params.items()
    }


@given(
    st.integers(0, 10_000),
    st.floats(0.01, 10.0),
    st.integers(1, 8),
    st.sampled_from([0.0, 0.5, 2.0]),
)
def test_private_gradient_matches_a_naive_per_example_loop(seed, clip, n, z):
    params, x, y = _batch(seed, n)
    grads, _ = per_example_gradients(_loss, params, x, y)
    out = private_gradient(
        grads,
        params,
        max_grad_norm=clip,
        noise_multiplier=z,
        expected_batch_size=n + 0.5,
        generator=torch.Generator().manual_seed(seed),
    )
    want = _naive_private_gradient(params, x, y, clip, z, n + 0.5, seed)
    for k in params:
        torch.testing.assert_close(out[k].double(), want[k], rtol=1e-6, atol=1e-6 * clip)


def test_unclipped_private_gradient_is_the_plain_sum():
    params, x, y = _batch(3, 6)
    grads, _ = per_example_gradients(_loss, params, x, y)
    out = private_gradient(
        grads,
        params,
        max_grad_norm=None,
        noise_multiplier=0.0,
        expected_batch_size=6,
        generator=torch.Generator(),
    )
    full = torch.func.grad(lambda p: sum(_loss(p, x[i], y[i]) for i in range(6)))(params)
    for k in params:
        torch.testing.assert_close(out[k], full[k] / 6)


def test_noise_has_the_calibrated_scale():
    params = {"w": torch.zeros(200, 100)}
    out = private_gradient(
        {},
        params,
        max_grad_norm=2.0,
        noise_multiplier=1.5,
        expected_batch_size=4.0,
        generator=torch.Generator().manual_seed(0),
    )
    assert float(out["w"].std()) == pytest.approx(1.5 * 2.0 / 4.0, rel=0.02)


def test_private_gradient_errors():
    params = {"w": torch.zeros(2)}
    with pytest.raises(AgentError, match="max_grad_norm"):
        private_gradient(
            {},
            params,
            max_grad_norm=None,
            noise_multiplier=1.0,
            expected_batch_size=1,
            generator=torch.Generator(),
        )
    with pytest.raises(AgentError, match="noise_multiplier"):
        private_gradient(
            {},
            params,
            max_grad_norm=1.0,
            noise_multiplier=-1.0,
            expected_batch_size=1,
            generator=torch.Generator(),
        )


def test_plan_matches_the_accountant():
    p = plan(60000, epochs=60, batch_size=256, noise_multiplier=1.1)
    assert p.steps == 14062 and p.sample_rate == pytest.approx(256 / 60000)
    assert p.epsilon == pytest.approx(epsilon(1.1, 256 / 60000, 14062, 1e-5))
    assert plan(100, noise_multiplier=0.0).epsilon == np.inf
    assert plan(0, noise_multiplier=1.0).epsilon == 0.0
    target = plan(1000, epochs=3, batch_size=50, target_epsilon=2.0)
    assert target.epsilon <= 2.0 and target.noise_multiplier > 0
    with pytest.raises(AgentError, match="batch_size"):
        plan(10, batch_size=0)


def test_one_row_trains_one_step_at_its_true_rate():
    one = plan(1, batch_size=16, noise_multiplier=1.0)
    assert one.steps == 1 and one.sample_rate == 1.0
    assert 0 < one.epsilon < np.inf
    assert one.epsilon == pytest.approx(epsilon(1.0, 1.0, 1, 1e-5))
    assert plan(7, epochs=1, batch_size=16).steps == 1  # round(7 / 16) would be 0
