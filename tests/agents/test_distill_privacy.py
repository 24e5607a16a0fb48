"""User-level DP of federated distillation: clipped updates, calibrated noise, epsilon per user."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import brentq
from scipy.stats import norm

from agents import AgentError, PrivateContext
from agents.accountant import UserAccountant
from agents.distill import DistillConfig, Student, distill_federated

ADS = ["trail shoes deal", "espresso beans deal", "tent lantern deal", "poetry novel deal"]
CFG = DistillConfig(buckets=64, dim=4, epochs=3, lr=0.5)


def teacher(context: PrivateContext, ads, priors) -> np.ndarray:
    """Logit 4 for the ads sharing a word with the context's events, -4 for the others."""
    words = {w for e in context.events for w in e.text.split()} - {"deal"}
    return np.array([4.0 if words & set(a.split()) else -4.0 for a in ads]) + 0.0 * priors


def devices(n: int) -> list[PrivateContext]:
    out = []
    for i in range(n):
        ctx = PrivateContext()
        ctx.add("view", ADS[i % len(ADS)], time=0.0)
        out.append(ctx)
    return out


def start() -> Student:
    return Student.initial(CFG.buckets, CFG.dim, rng=0)


def update_norm(a: Student, b: Student) -> float:
    sa, sb = a.state(), b.state()
    return math.sqrt(sum(float(np.square(sa[k].astype(float) - sb[k]).sum()) for k in sa))


def gaussian_epsilon(mu: float, delta: float) -> float:
    """Epsilon of a mu-GDP mechanism at delta (Dong, Roth and Su 2019, Corollary 2.13):
    delta(eps) = Phi(-eps/mu + mu/2) - e^eps Phi(-eps/mu - mu/2), solved for eps."""

    def gap(eps: float) -> float:
        return norm.cdf(-eps / mu + mu / 2) - math.exp(eps) * norm.cdf(-eps / mu - mu / 2) - delta

    return brentq(gap, 0.0, 100.0)


@settings(max_examples=15, deadline=None)
@given(st.floats(0.01, 2.0), st.integers(1, 4))
def test_the_released_update_is_within_the_clipping_norm(clip, n):
    init = start()
    fit = distill_federated(
        teacher, devices(n), ADS, rounds=1, per_round=n, config=CFG, init=init,
        clipping_norm=clip, rng=0,
    )  # fmt: skip
    free = distill_federated(teacher, devices(n), ADS, rounds=1, per_round=n, config=CFG,
                             init=init, rng=0)  # fmt: skip
    assert update_norm(fit.student, init) <= clip * (1 + 1e-5)
    if update_norm(free.student, init) <= clip:  # nothing to clip: the plain mean
        np.testing.assert_allclose(fit.student.state()["student.table"],
                                   free.student.state()["student.table"], atol=1e-6)  # fmt: skip


def test_noise_has_the_dp_fedavg_scale():
    init, n, clip, z = start(), 4, 0.5, 3.0
    runs = [
        distill_federated(teacher, devices(n), ADS, rounds=1, per_round=n, config=CFG,
                          init=init, clipping_norm=clip, noise_multiplier=m, rng=7).student
        for m in (0.0, z)
    ]  # fmt: skip
    noise = np.concatenate(
        [(runs[1].state()[k] - runs[0].state()[k]).ravel() for k in runs[0].state()]
    )
    assert noise.size > 250
    assert abs(noise.mean()) < 0.2 * z * clip / n
    assert noise.std() == pytest.approx(z * clip / n, rel=0.1)  # std / mean of the replies


def test_each_device_is_charged_one_gaussian_per_round_it_took_part_in():
    z, rounds, delta = 1.5, 3, 1e-5
    fit = distill_federated(
        teacher, devices(4), ADS, rounds=rounds, per_round=4, config=CFG,
        clipping_norm=1.0, noise_multiplier=z, rng=0,
    )  # fmt: skip
    exact = gaussian_epsilon(math.sqrt(rounds) / z, delta)  # k Gaussians = one of z / sqrt(k)
    assert fit.epsilons.shape == (4,)
    assert np.all(fit.epsilons >= exact * 0.999)
    assert np.all(fit.epsilons <= exact * 1.02)


def test_without_noise_a_participant_has_no_finite_epsilon():
    fit = distill_federated(teacher, devices(6), ADS, rounds=1, per_round=2, config=CFG, rng=0)
    assert sorted(fit.epsilons.tolist()) == [0, 0, 0, 0, math.inf, math.inf]


def test_the_runs_accountant_is_charged_and_a_device_that_cannot_pay_sits_out():
    privacy = UserAccountant(10, budget=1.0)  # one round at z = 1 costs more than 1
    fit = distill_federated(
        teacher, devices(3), ADS, rounds=2, per_round=3, config=CFG, clipping_norm=1.0,
        noise_multiplier=1.0, privacy=privacy, device_ids=[7, 8, 9], rng=0,
    )  # fmt: skip
    assert fit.losses == ()  # nobody could pay: no round ran
    assert privacy.refused == {"student distillation": 6}
    assert fit.epsilons.tolist() == [0.0, 0.0, 0.0]
    rich = UserAccountant(10)
    fit = distill_federated(
        teacher, devices(3), ADS, rounds=2, per_round=3, config=CFG, clipping_norm=1.0,
        noise_multiplier=1.0, privacy=rich, device_ids=[7, 8, 9], rng=0,
    )  # fmt: skip
    assert len(fit.losses) == 2
    np.testing.assert_array_equal(rich.epsilons([7, 8, 9]), fit.epsilons)
    assert rich.epsilons([0]).tolist() == [0.0]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"clipping_norm": 0.0}, "clipping_norm must be > 0"),
        ({"clipping_norm": math.inf}, "clipping_norm must be > 0"),
        ({"noise_multiplier": 1.0}, "noise_multiplier .* only with a clipping_norm"),
        ({"noise_multiplier": -1.0, "clipping_norm": 1.0}, "noise_multiplier must be finite"),
        ({"device_ids": [1]}, "device_ids must hold one id per device"),
    ],
)
def test_bad_privacy_settings_are_named(kwargs, match):
    with pytest.raises(AgentError, match=match):
        distill_federated(teacher, devices(2), ADS, config=CFG, **kwargs)
