"""Gaming a round's payment does not pay (issue 14, item 6): ``incentives.gaming`` and
``RoundPayer``. The round: updates move a 3-d model toward a target; utility = -squared
distance of ``w_t + weighted mean of the updates in S`` (as in test_incentives_honesty)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from incentives import IncentiveError, Ledger, RewardPolicy, RoundPayer
from incentives.gaming import (
    capped_claims,
    duplicate_groups,
    median_norm,
    normalised,
    norms,
    per_example_shares,
)

TARGET = np.array([1.0, -2.0, 0.5])


def evaluate(p):
    return -float(np.sum((p["w"] - TARGET) ** 2))


def pay(updates, claims, caps=None, norm=None, game=evaluate):
    """Tokens of one round (revenue 1,000) paid by a fresh RoundPayer (exact Shapley)."""
    payer = RoundPayer(game, Ledger(":memory:"), RewardPolicy(0.1), "exact", norm=norm)
    accounts = [f"c{i}" for i in range(len(updates))]
    ups = [{"w": np.asarray(u, dtype=float)} for u in updates]
    start = {"w": np.zeros(len(updates[0]))}
    return payer.pay(1, start, accounts, ups, claims, 1000.0, caps).tokens


def honest(k, seed, n=40.0):
    """k honest updates: TARGET plus noise of a mean over n examples."""
    rng = np.random.default_rng(seed)
    return [TARGET + rng.normal(size=3) / np.sqrt(n) for _ in range(k)]


def test_claims_are_capped_by_the_assignment():
    assert capped_claims([3.0, 1e6, 2.0], [5.0, 40.0, np.inf]).tolist() == [3.0, 40.0, 2.0]
    assert capped_claims([1.0, 2.0], None).tolist() == [1.0, 2.0]
    with pytest.raises(IncentiveError, match="claims"):
        capped_claims([1.0, float("nan")], None)
    with pytest.raises(IncentiveError, match="caps must be 2"):
        capped_claims([1.0, 2.0], [1.0])


def test_norms_groups_and_shares_by_hand():
    ups = [{"w": np.array([3.0, 4.0])}, {"w": np.array([0.0, 2.0])}, {"w": np.array([6.0, 8.0])}]
    assert norms(ups).tolist() == [5.0, 2.0, 10.0]
    assert norms(normalised(ups, 2.0)).tolist() == [2.0, 2.0, 2.0]
    groups = duplicate_groups(normalised(ups, 1.0), 0.1)
    assert groups == [[0, 2], [1]]  # 0 and 2 point the same way
    assert median_norm(ups, groups) == 3.5  # groups' smallest norms 5 and 2
    # group [0, 2] paid for its largest claim (4) split in two; group [1] for 2; total 6
    shares = per_example_shares(np.array([1.0, 0.5]), groups, np.array([4.0, 2.0, 1.0]))
    assert shares.tolist() == pytest.approx([2 / 6, 2 / 6, 2 / 6])
    assert per_example_shares(
        np.array([1.0, -0.5]), groups, np.array([4.0, 2.0, 1.0])
    ).tolist() == [0.5, 0.0, 0.5]


def test_round_total_is_one_concave_price_per_round():
    policy = RewardPolicy(revenue_share=0.1)
    assert policy.round_total(4.0, revenue=1000.0) == 2.0  # price 1 x sqrt(4) under budget 100
    assert RewardPolicy(revenue_share=0.1).round_total(1e6, revenue=50.0) == 5.0  # budget
    with pytest.raises(IncentiveError, match="gain"):
        policy.round_total(float("nan"), 1.0)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.2, 5.0), st.integers(0, 3))
def test_scaling_an_update_changes_nothing_at_a_set_norm(seed, factor, who):
    ups = honest(4, seed)
    before = pay(ups, [40.0] * 4, norm=1.0)
    ups[who] = factor * ups[who]
    assert pay(ups, [40.0] * 4, norm=1.0) == pytest.approx(before, rel=1e-9, abs=1e-12)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 4))
def test_splitting_into_identities_earns_at_most_1_2x(seed, k):
    # 20-d updates: in few dimensions two honest updates can fall within the duplicate
    # tolerance by chance (then they share one claim, and a sybil's parts gain); model
    # updates have thousands of dimensions, where distances concentrate
    rng = np.random.default_rng(seed)
    target = rng.normal(size=20)
    evaluate20 = lambda p: -float(np.sum((p["w"] - target) ** 2))  # noqa: E731
    others = [target + rng.normal(size=20) / np.sqrt(40.0) for _ in range(3)]
    noise = rng.normal(size=(k, 20)) / np.sqrt(40.0 / k)  # each part: 40/k examples
    parts = [target + e for e in noise]
    whole = target + noise.mean(axis=0)  # trained on all of it
    alone = pay([whole, *others], [40.0] * 4, game=evaluate20)[0]
    split = pay([*parts, *others], [40.0 / k] * k + [40.0] * 3, game=evaluate20)[:k].sum()
    assert split <= 1.2 * alone


@pytest.mark.parametrize("factor", [1.0, 2.0, 1e-3])
def test_a_copier_earns_at_most_what_the_original_loses(factor):
    ups = honest(4, seed=5)
    alone = pay(ups, [40.0] * 4)
    copied = pay([*ups, factor * ups[1]], [40.0] * 5)
    assert copied[4] <= alone[1] - copied[1] + 1e-12
    assert copied[1] == pytest.approx(copied[4])  # one player, split in two


def test_a_size_liar_is_capped_and_a_free_rider_earns_nothing():
    ups = honest(4, seed=6)
    truth = pay(ups, [40.0] * 4, caps=[40.0] * 4)
    assert pay(ups, [1e6, 40, 40, 40], caps=[40.0] * 4).tolist() == truth.tolist()
    rider = pay([*ups, np.zeros(3)], [40.0] * 5)
    assert rider[4] == 0.0 and (rider[:4] > 0).all()


def test_bad_payer_settings():
    with pytest.raises(IncentiveError, match="norm"):
        RoundPayer(evaluate, Ledger(":memory:"), RewardPolicy(), norm=0.0)
    with pytest.raises(IncentiveError, match="duplicate_tolerance"):
        RoundPayer(evaluate, Ledger(":memory:"), RewardPolicy(), duplicate_tolerance=1.0)
