"""GSP's lowest envy-free equilibrium (EOS 2007): hand-computed prices, VCG's revenue, envy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auction import AuctionError, run_auctions, welfare
from auction.equilibrium import gsp_envy_free_bids, vcg_slot_prices


def test_hand_computed_example():
    # values 10, 4, 2; CTRs 1, 0.5. VCG: slot 2 pays v3 = 2; slot 1 pays
    # (1 - 0.5) * 4 + 0.5 * 2 = 3. GSP at truthful bids charges 4 and 2: revenue 5;
    # at the equilibrium bids (10, 3, 2) it charges 3 and 2: revenue 3 + 0.5 * 2 = 4.
    v = np.array([[10.0, 4.0, 2.0]])
    assert vcg_slot_prices(v, [1.0, 0.5]).tolist() == [[3.0, 2.0]]
    bids = gsp_envy_free_bids(v, [1.0, 0.5])
    assert bids.tolist() == [[10.0, 3.0, 2.0]]
    eq = run_auctions(bids, mechanism="gsp", slot_ctrs=[1.0, 0.5], rng=0)
    truthful = run_auctions(v, mechanism="gsp", slot_ctrs=[1.0, 0.5], rng=0)
    assert welfare(eq, v).revenue == pytest.approx(4.0)
    assert welfare(truthful, v).revenue == pytest.approx(5.0)


def test_reserve_acts_as_bidders_at_the_reserve():
    # reserve 2.5 excludes the bidder of value 2: slot 2 pays 2.5, slot 1 pays
    # 0.5 * 4 + 0.5 * 2.5 = 3.25; revenue 3.25 + 0.5 * 2.5 = 4.5
    v = np.array([[2.0, 10.0, 4.0]])
    assert vcg_slot_prices(v, [1.0, 0.5], reserve=2.5).tolist() == [[3.25, 2.5]]
    bids = gsp_envy_free_bids(v, [1.0, 0.5], reserve=2.5)
    eq = run_auctions(bids, mechanism="gsp", slot_ctrs=[1.0, 0.5], reserve=2.5, rng=0)
    assert welfare(eq, v).revenue == pytest.approx(4.5)
    # 0.95 * 3 + 0.05 * 3 rounds below 3: the price is still the reserve, so the
    # second bidder keeps its slot (hypothesis found it)
    p = vcg_slot_prices([[3.0, 3.0]], [1.0, 0.05], reserve=3.0)
    assert (p >= 3.0).all() and p.tolist() == [[3.0, pytest.approx(3.0)]]
    eq = run_auctions(
        gsp_envy_free_bids([[3.0, 3.0]], [1.0, 0.05], 3.0),
        mechanism="gsp",
        slot_ctrs=[1.0, 0.05],
        reserve=3.0,
        rng=0,
    )
    assert (eq.winners >= 0).all()
    # fewer bidders than slots: the lone bidder pays the reserve
    assert vcg_slot_prices([[5.0]], [1.0, 0.5], reserve=1.0).tolist() == [[1.0, 0.0]]


def test_bad_input_is_named():
    with pytest.raises(AuctionError, match="reserve"):
        vcg_slot_prices([[1.0, 2.0]], [1.0], reserve=-1.0)
    with pytest.raises(AuctionError, match="bids"):
        gsp_envy_free_bids([1.0, 2.0], [1.0])


def test_equal_ctrs_keep_value_order():
    # found by hypothesis: equal CTRs give slots 1 and 2 the same price (0.25), so the
    # bidders ranked 2 and 3 bid alike and GSP's tie break could put the value-1 bidder
    # in slot 3, where it envies slot 2 (0.5 * 1 < 1 * (1 - 0.25))
    v = np.array([[0.0, 0.0, 1.0, 0.5, 1.0]])
    ctr = [1.0, 1.0, 0.5]
    bids = gsp_envy_free_bids(v, ctr)
    assert bids[0, 4] > bids[0, 3] > 0
    for seed in range(20):
        eq = run_auctions(bids, mechanism="gsp", slot_ctrs=ctr, rng=seed)
        assert eq.winners[0].tolist() == [2, 4, 3]
        assert welfare(eq, v).revenue == pytest.approx(0.5, abs=1e-9)


profiles = st.integers(2, 6).flatmap(
    lambda n: st.lists(st.floats(0.0, 10.0), min_size=n, max_size=n).map(np.array)
)
ctrs = st.lists(st.floats(0.05, 1.0), min_size=1, max_size=4).map(lambda c: sorted(c)[::-1])


@settings(max_examples=300, deadline=None)
@given(profiles, ctrs, st.sampled_from([0.0, 0.5, 3.0]))
def test_equilibrium_revenue_is_vcg_and_no_bidder_envies(values, slot_ctrs, reserve):
    v = values[None, :]
    bids = gsp_envy_free_bids(v, slot_ctrs, reserve)
    eq = run_auctions(bids, mechanism="gsp", slot_ctrs=slot_ctrs, reserve=reserve, rng=0)
    vcg = run_auctions(v, mechanism="vcg", slot_ctrs=slot_ctrs, reserve=reserve, rng=0)
    # the peer: the engine's VCG at truthful bids (EOS Theorem 2)
    assert welfare(eq, v).revenue == pytest.approx(welfare(vcg, v).revenue, abs=1e-9)
    utility = welfare(eq, v).utilities
    assert (utility >= -1e-9).all()  # no one pays above its value
    won = eq.winners[0]
    for i in range(1, len(won)):
        if won[i] < 0:
            break
        a, b = slot_ctrs[i], slot_ctrs[i - 1]
        vi, above = values[won[i]], eq.prices[0, i - 1]
        # locally envy-free: slot i at its price beats slot i-1 at the price paid there
        assert a * (vi - eq.prices[0, i]) >= b * (vi - above) - 1e-9
