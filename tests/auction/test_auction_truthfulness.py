"""Ex-post regret: zero for truthful mechanisms, textbook deviations for the others."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from auction import AuctionError, run_auctions
from auction.truthfulness import ex_post_regret

# Edelman, Ostrovsky & Schwarz (2007), "Internet advertising and the generalized second-price
# auction", AER 97(1), section II: values 10, 4, 2 and two slots with 200 and 199 clicks.
EOS_VALUES = [10.0, 4.0, 2.0]
EOS_CTRS = [1.0, 0.995]


def test_gsp_shading_to_the_second_slot_pays():
    # Truthful: slot 1 at price 4, utility 6. Bidding in (2, 4): slot 2 at price 2, 7.96.
    report = ex_post_regret(EOS_VALUES, mechanism="gsp", slot_ctrs=EOS_CTRS)
    best = report.best
    assert best is not None and best.bidders == (0,) and best.values.tolist() == [10.0]
    assert 2.0 < best.misreports[0] < 4.0
    assert best.gain == pytest.approx(1.96)
    assert report.regrets[0].tolist() == pytest.approx([1.96, 0.0, 0.0])
    summary = json.loads(json.dumps(report.to_dict()))
    assert summary["best"]["bidders"] == [0] and summary["max_regret"] == pytest.approx(1.96)


def test_vcg_has_no_regret_on_the_gsp_example():
    report = ex_post_regret(EOS_VALUES, mechanism="vcg", slot_ctrs=EOS_CTRS)
    assert report.max_regret == 0.0 and report.best is None
    assert report.to_dict()["best"] is None


def test_first_price_winner_gains_by_bidding_just_above_the_runner_up():
    best = ex_post_regret([10.0, 4.0, 2.0], mechanism="first_price").best
    assert best.bidders == (0,) and best.misreports[0] == pytest.approx(4.0)
    assert best.gain == pytest.approx(6.0)


def test_pairs_collude_profitably_even_in_second_price():
    # Second price is truthful but not group-strategyproof: 1 stays out, 0 pays 2 instead of 8.
    report = ex_post_regret([10.0, 8.0, 2.0], coalitions=2)
    assert report.coalitions == ((0, 1), (0, 2), (1, 2))
    assert report.regrets[0].tolist() == pytest.approx([6.0, 0.0, 0.0])
    assert report.best.bidders == (0, 1) and report.best.misreports[1] < 2.0


def test_explicit_ring_of_three():
    report = ex_post_regret([10.0, 8.0, 6.0, 2.0], coalitions=[(0, 1, 2)])
    assert report.max_regret == pytest.approx(6.0)  # everyone else out: pay 2, not 8


def test_callable_mechanism_and_reserve_per_instance():
    def first_price(bids):
        return run_auctions(bids, mechanism="first_price", reserve=1.0)

    values = np.array([[5.0, 3.0], [0.5, 0.2]])
    report = ex_post_regret(values, mechanism=first_price, reserve=[1.0, 1.0])
    assert report.regrets[:, 0] == pytest.approx([2.0, 0.0])
    assert report.mean_regret == pytest.approx(0.5)


def test_sampled_and_grid_misreports_find_first_price_regret():
    sampled = ex_post_regret([10.0, 4.0], mechanism="first_price", misreports="sampled", rng=1)
    again = ex_post_regret([10.0, 4.0], mechanism="first_price", misreports="sampled", rng=1)
    assert sampled.regrets.tolist() == again.regrets.tolist()
    assert 5.0 < sampled.max_regret < 6.0
    grid = ex_post_regret([10.0, 4.0], mechanism="first_price", misreports=np.arange(0.5, 11.0))
    assert grid.best.misreports.tolist() == [4.5] and grid.max_regret == 5.5


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"values": [[[1.0]]]}, "values"),
        ({"values": [-1.0, 2.0]}, "values"),
        ({"coalitions": 3}, "size"),
        ({"coalitions": [(0, 0)]}, "distinct"),
        ({"misreports": "all"}, "misreports"),
        ({"misreports": [[1.0]]}, "grid"),
        ({"max_misreports": 0}, "max_misreports"),
        ({"quality": [1.0, 2.0, 3.0]}, "quality"),
        ({"quality": [1.0, 0.0]}, "quality"),
    ],
)
def test_bad_input_is_rejected(kwargs, match):
    kwargs = {"values": [2.0, 1.0], **kwargs}
    with pytest.raises(AuctionError, match=match):
        ex_post_regret(**kwargs)


# --- properties -------------------------------------------------------------------------


@st.composite
def instances(draw, max_slots):
    n_inst, n = draw(st.integers(1, 4)), draw(st.integers(1, 6))
    k = draw(st.integers(1, max_slots))
    # Values on a coarse grid so that ties (the hard case for tie-breaking) occur often.
    values = draw(arrays(np.float64, (n_inst, n), elements=st.sampled_from(np.arange(0, 9) / 2)))
    ctrs = sorted(draw(st.lists(st.floats(0.05, 1.0), min_size=k, max_size=k)), reverse=True)
    reserve = draw(arrays(np.float64, n_inst, elements=st.floats(0.0, 3.0)))
    quality = draw(st.none() | arrays(np.float64, (n_inst, n), elements=st.floats(0.1, 2.0)))
    return {"values": values, "slot_ctrs": ctrs, "reserve": reserve, "quality": quality}


@given(inst=instances(max_slots=4), seed=st.integers(0, 1000))
def test_vcg_is_truthful_on_random_instances(inst, seed):
    assert ex_post_regret(mechanism="vcg", rng=seed, **inst).max_regret == 0.0


@given(inst=instances(max_slots=1), mech=st.sampled_from(["second_price", "gsp"]))
def test_second_price_is_truthful_on_random_instances(inst, mech):
    # One slot: GSP is second price.
    assert ex_post_regret(mechanism=mech, rng=0, **inst).max_regret == 0.0


@given(inst=instances(max_slots=3), seed=st.integers(0, 1000))
def test_sampled_misreports_never_beat_truthful_vcg(inst, seed):
    report = ex_post_regret(
        mechanism="vcg", misreports="sampled", max_misreports=64, rng=seed, **inst
    )
    assert report.max_regret == 0.0


@given(values=arrays(np.float64, st.integers(2, 6), elements=st.floats(0.0, 10.0)))
def test_first_price_winner_regret_is_its_margin(values):
    report = ex_post_regret(values, mechanism="first_price", rng=0)
    top, second = np.sort(values)[::-1][:2]
    assert report.max_regret == pytest.approx(top - second, abs=1e-6)
