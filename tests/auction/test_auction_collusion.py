"""Bid rings: simulation, the cartel screens, and what a ring takes with and without a reserve."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from auction import AuctionError, run_auctions, welfare
from auction.collusion import (
    coefficient_of_variation,
    relative_gap,
    ring_bids,
    ring_report,
    winner_rotation,
)


def test_ring_designates_its_highest_member():
    bids = [[10.0, 8.0, 2.0], [3.0, 9.0, 2.0]]
    assert ring_bids(bids, [0, 1]).tolist() == [[10.0, 0.0, 2.0], [0.0, 9.0, 2.0]]


def test_rotating_ring_with_cover_bids():
    bids = np.array([[10.0, 8.0, 6.0, 2.0]] * 3)
    out = ring_bids(bids, [0, 1, 2], designated="rotate", cover=0.5)
    assert out[:, :3].argmax(axis=1).tolist() == [0, 1, 2]
    assert out[1].tolist() == [4.0, 8.0, 4.0, 2.0]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"ring": [0]}, "ring"),
        ({"ring": [0, 0]}, "ring"),
        ({"ring": [0, 5]}, "ring"),
        ({"cover": 1.0}, "cover"),
        ({"designated": "random"}, "designated"),
    ],
)
def test_ring_bids_validate(kwargs, match):
    kwargs = {"ring": [0, 1], **kwargs}
    with pytest.raises(AuctionError, match=match):
        ring_bids([[3.0, 2.0, 1.0]], **kwargs)


def test_ring_report_textbook_numbers():
    # Competitive: 0 wins and pays 8. Ring: 1 stays out, 0 pays max(reserve, 2).
    rep = ring_report([[10.0, 8.0, 2.0]], [0, 1], reserve=6.0)
    assert (rep.no_reserve.gain, rep.no_reserve.revenue_lost) == (6.0, 6.0)
    assert (rep.with_reserve.gain, rep.with_reserve.revenue_lost) == (2.0, 2.0)
    assert rep.with_reserve.revenue_collusive == 6.0 and rep.with_reserve.reserve == 6.0


def test_ring_report_for_first_price_with_given_bids():
    values = np.array([[10.0, 8.0, 2.0]])
    bids = np.array([[9.0, 7.0, 1.0]])
    rep = ring_report(values, [0, 1], reserve=0.0, bids=bids, mechanism="first_price")
    assert rep.no_reserve.gain == 0.0  # first price: the winner pays its own bid either way
    with pytest.raises(AuctionError, match="shape"):
        ring_report(values, [0, 1], reserve=0.0, bids=bids[:, :2])


@given(
    values=arrays(np.float64, (5, 4), elements=st.floats(0.0, 10.0)),
    reserve=st.floats(0.0, 10.0),
    seed=st.integers(0, 100),
)
def test_second_price_ring_gain_is_the_sellers_loss_and_a_reserve_caps_it(values, reserve, seed):
    rep = ring_report(values, [0, 2], reserve=reserve, rng=seed)
    for case in (rep.no_reserve, rep.with_reserve):
        # The designated member is the one who would win anyway: the allocation and thus the
        # welfare (revenue + utilities) are unchanged, so the ring's gain is a pure transfer.
        assert case.gain >= -1e-9
        assert case.gain == pytest.approx(case.revenue_lost, abs=1e-9)
    assert rep.with_reserve.gain <= rep.no_reserve.gain + 1e-9


@given(values=arrays(np.float64, (6, 5), elements=st.floats(0.0, 10.0)))
def test_welfare_identity_under_a_ring(values):
    out = run_auctions(ring_bids(values, [1, 3, 4], designated="rotate"), rng=0)
    report = welfare(out, values)
    assert report.social_welfare == pytest.approx(report.revenue + report.utilities.sum())


# --- screens --------------------------------------------------------------------------


def test_coefficient_of_variation_per_auction_and_per_bidder():
    bids = np.array([[1.0, 3.0, 0.0], [2.0, 0.0, 0.0]])
    np.testing.assert_allclose(coefficient_of_variation(bids), [0.5, np.nan])
    np.testing.assert_allclose(coefficient_of_variation(bids, axis=0), [1 / 3, np.nan, np.nan])
    with pytest.raises(AuctionError, match="axis"):
        coefficient_of_variation(bids, axis=2)


def test_relative_gap():
    np.testing.assert_allclose(
        relative_gap([[10.0, 8.0, 2.0], [10.0, 0.0, 2.0], [0.0, 0.0, 0.0], [4.0, 4.0, 1.0]]),
        [0.2, 0.8, np.nan, 0.0],
    )


def test_rotation_of_a_perfect_cycle():
    rot = winner_rotation(np.array([0, 1, 2, 5, 0, 1, 2, -1, 0, 1, 2]), [0, 1, 2])
    assert rot.switch_rate == 1.0 and rot.wins == 9
    assert rot.excess == pytest.approx(1 / 3)
    np.testing.assert_allclose(rot.shares, [1 / 3] * 3)


def test_rotation_needs_two_group_wins_and_valid_input():
    assert np.isnan(winner_rotation(np.array([0, 3, 3]), [0, 1]).excess)
    with pytest.raises(AuctionError, match="winners"):
        winner_rotation(np.array([0.5]), [0, 1])
    with pytest.raises(AuctionError, match="group"):
        winner_rotation(np.array([0, 1]), [0])


def simulate(designated, cover, seed=0):
    values = np.random.default_rng(seed).uniform(1.0, 2.0, size=(3000, 5))
    competitive = run_auctions(values, rng=seed)
    rigged = ring_bids(values, [0, 1, 2], designated=designated, cover=cover)
    return values, competitive, rigged, run_auctions(rigged, rng=seed)


def test_screens_flag_a_rotating_ring():
    values, competitive, rigged, collusive = simulate("rotate", cover=0.0)
    honest = winner_rotation(competitive.winners[:, 0], [0, 1, 2])
    ring = winner_rotation(collusive.winners[:, 0], [0, 1, 2])
    # Outsiders win some turns, so the ring's cycle is diluted but still far above chance.
    assert abs(honest.excess) < 0.03 < 0.08 < ring.excess
    assert np.nanmean(relative_gap(rigged)) > 1.4 * np.nanmean(relative_gap(values))


def test_variance_screen_flags_cover_bidding():
    values, _, rigged, _ = simulate("highest", cover=0.95)
    cv_ring = np.nanmean(coefficient_of_variation(rigged[:, :3]))
    cv_honest = np.nanmean(coefficient_of_variation(values[:, :3]))
    assert cv_ring < 0.5 * cv_honest
