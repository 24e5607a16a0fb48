"""Myerson reserves, combinatorial VCG and the welfare identity."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from auction import (
    AuctionError,
    combinatorial_vcg,
    myerson_reserve,
    run_auction,
    run_auctions,
    virtual_value,
    welfare,
)


@pytest.mark.parametrize(
    ("dist", "seller", "expected"),
    [
        (stats.uniform(0, 1), 0.0, 0.5),
        (stats.uniform(0, 10), 0.0, 5.0),
        (stats.uniform(0, 1), 0.2, 0.6),  # 2r - 1 = 0.2
        (stats.expon(scale=2.0), 0.0, 2.0),  # exponential: r* = mean
        (stats.expon(scale=2.0), 1.0, 3.0),
    ],
)
def test_myerson_reserve_closed_forms(dist, seller, expected):
    assert myerson_reserve(dist, seller) == pytest.approx(expected, abs=1e-8)


def test_virtual_value_of_uniform():
    np.testing.assert_allclose(virtual_value(stats.uniform(0, 1), [0.25, 0.5, 1.0]), [-0.5, 0, 1])


def test_myerson_reserve_maximises_simulated_revenue():
    values = np.random.default_rng(0).uniform(size=(200_000, 2))
    revenue = {r: run_auctions(values, reserve=r, rng=0).revenue.mean() for r in (0.3, 0.5, 0.7)}
    assert max(revenue, key=revenue.get) == 0.5
    assert revenue[0.5] == pytest.approx(5 / 12, abs=3e-3)  # Myerson's 2-bidder revenue


def test_myerson_reserve_rejects_bad_support():
    with pytest.raises(AuctionError, match="support"):
        myerson_reserve(stats.uniform(0, 1), support=(1.0, 0.0))


def test_combinatorial_vcg_textbook():
    # Two single-item bidders beat the bundle bidder; each pays the bundle bid minus the other's.
    out = combinatorial_vcg([{("a", "b"): 10}, {"a": 6}, {"b": 6}])
    assert out.bundles == (None, frozenset({"a"}), frozenset({"b"}))
    np.testing.assert_allclose(out.payments, [0, 4, 4])
    assert out.welfare == 12


def test_combinatorial_vcg_xor_takes_one_bundle():
    out = combinatorial_vcg([{"a": 5, "b": 5, ("a", "b"): 6}, {"b": 2}])
    assert out.bundles == (frozenset({"a"}), frozenset({"b"}))
    # Bidder 1 displaces the bundle bid (6) from bidder 0, who then gets 5: pays 6 - 5.
    np.testing.assert_allclose(out.payments, [0, 1])


@given(st.lists(st.floats(0.0, 50.0, allow_nan=False), min_size=1, max_size=8))
def test_combinatorial_single_item_is_second_price(values):
    out = combinatorial_vcg([{"x": v} for v in values], rng=0)
    single = run_auction(values, rng=0)
    assert out.payments.sum() == pytest.approx(single.payments.sum())
    assert out.welfare == pytest.approx(max(values))


def test_combinatorial_vcg_too_many_bidders():
    with pytest.raises(AuctionError, match="at most 8 bidders"):
        combinatorial_vcg([{"a": 1.0}] * 9)


@given(
    st.lists(st.floats(0.0, 100.0, allow_nan=False), min_size=1, max_size=8),
    st.sampled_from(["second_price", "gsp", "vcg", "first_price"]),
    st.integers(0, 1000),
)
def test_welfare_identity(values, mechanism, seed):
    rng = np.random.default_rng(seed)
    bids = np.asarray(values) * rng.uniform(0.5, 1.0, len(values))
    ctrs = None if mechanism in ("second_price", "first_price") else [1.0, 0.5]
    out = run_auction(bids, mechanism=mechanism, slot_ctrs=ctrs, rng=rng)
    rep = welfare(out, values)
    assert rep.social_welfare == pytest.approx(rep.revenue + rep.advertiser_surplus)
    assert rep.utilities.sum() == pytest.approx(rep.advertiser_surplus)


def test_welfare_of_batch():
    out = run_auctions([[5.0, 8.0], [9.0, 1.0]])
    rep = welfare(out, [[6.0, 10.0], [9.0, 2.0]])
    assert rep.revenue == 6.0 and rep.social_welfare == 19.0
    np.testing.assert_allclose(rep.utilities, [8.0, 5.0])
