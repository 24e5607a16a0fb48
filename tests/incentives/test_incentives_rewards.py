"""The reward policy: budget, diminishing returns, floor, nothing for no value; the Gini index."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from incentives import IncentiveError, RewardPolicy, gini


def test_concave_floor_and_budget():
    policy = RewardPolicy(revenue_share=0.5, floor_share=0.5)
    pay = policy.pay(np.array([4.0, 1.0, 0.0001, 0.0, -1.0]), revenue=100.0)
    assert pay[0] == pytest.approx(2 * pay[1])  # diminishing returns: 4x the value, 2x the pay
    assert pay[2] == pytest.approx(0.5 * (2 + 1 + 0.01) / 3)  # lifted to half the mean raw pay
    assert pay[3] == 0 and pay[4] == 0
    capped = RewardPolicy(revenue_share=0.01).pay(np.array([100.0, 100.0]), revenue=10.0)
    assert capped.sum() == pytest.approx(0.1)


def test_floor_lowers_concentration():
    values = np.array([10.0, 0.01, 0.01, 0.01])
    flat = RewardPolicy(floor_share=0.0).pay(values, 1e6)
    floored = RewardPolicy(floor_share=0.5).pay(values, 1e6)
    assert gini(floored) < gini(flat)


def test_price_follows_demand():
    policy = RewardPolicy(demand_rate=0.5)
    policy.pay(np.array([1.0]), 100.0)
    start = policy.price
    policy.pay(np.array([0.01]), 100.0)  # value became scarce
    assert policy.price > start
    scarce = policy.price
    policy.pay(np.array([10.0]), 100.0)  # plentiful
    assert policy.price < scarce


@given(
    st.lists(st.floats(-10, 10), min_size=1, max_size=30),
    st.floats(0, 1e4),
    st.floats(0, 1),
    st.floats(0, 1),
)
def test_pay_invariants(values, revenue, share, floor):
    v = np.array(values)
    pay = RewardPolicy(revenue_share=share, floor_share=floor).pay(v, revenue)
    assert pay.sum() <= share * revenue * (1 + 1e-9) + 1e-12  # within the budget
    assert (pay[v <= 0] == 0).all() and (pay >= 0).all()  # no value, no pay
    order = np.argsort(v, kind="stable")
    assert (np.diff(pay[order]) >= -1e-12).all()  # more value never earns less


@given(st.lists(st.floats(0, 100), min_size=1, max_size=50))
def test_gini_bounds(xs):
    assert 0 <= gini(np.array(xs)) <= 1


def test_gini_known_values():
    assert gini(np.ones(5)) == 0.0 and gini(np.zeros(3)) == 0.0
    assert gini(np.array([0, 0, 0, 1.0])) == pytest.approx(0.75)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"revenue_share": 1.5}, "revenue_share"),
        ({"floor_share": -0.1}, "floor_share"),
        ({"demand_rate": 2.0}, "demand_rate"),
        ({"price": 0.0}, "price"),
    ],
)
def test_bad_policy(kwargs, match):
    with pytest.raises(IncentiveError, match=match):
        RewardPolicy(**kwargs)


def test_bad_pay_and_gini_input():
    with pytest.raises(IncentiveError, match="values"):
        RewardPolicy().pay(np.array([np.nan]), 1.0)
    with pytest.raises(IncentiveError, match="revenue"):
        RewardPolicy().pay(np.array([1.0]), -1.0)
    with pytest.raises(IncentiveError, match="x must"):
        gini(np.array([-1.0, 2.0]))


@given(
    gain=st.floats(0.0, 1e6, allow_nan=False),
    revenue=st.floats(0.0, 1e9, allow_nan=False),
    share=st.floats(0.0, 1.0),
)
def test_revenue_pool_pays_the_whole_budget_for_any_positive_gain(gain, revenue, share):
    total = RewardPolicy(revenue_share=share, pool="revenue").round_total(gain, revenue)
    assert total == (share * revenue if gain > 0 else 0.0)


def test_revenue_pool_is_visible_where_the_value_price_is_not():
    # a tiny gain (log-likelihood units) priced at sqrt: 0.01 tokens of a 50-token budget
    assert RewardPolicy(0.1).round_total(1e-4, revenue=500.0) == pytest.approx(0.01)
    assert RewardPolicy(0.1, pool="revenue").round_total(1e-4, revenue=500.0) == 50.0
    with pytest.raises(IncentiveError, match="pool must be 'value' or 'revenue'"):
        RewardPolicy(pool="gain")  # type: ignore[arg-type]
