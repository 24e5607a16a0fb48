"""Mechanisms and the batched engine: textbook numbers, properties, batch == single."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from auction import AuctionError, run_auction, run_auctions

MECHS = ["second_price", "gsp", "vcg", "first_price"]
MULTI = ["gsp", "vcg"]


def reference_auction(bids, mechanism, ctrs, reserve, quality):
    """Per-auction oracle written from the textbook definitions (tie-free inputs)."""
    n = len(bids)
    eligible = [i for i in range(n) if bids[i] >= reserve and bids[i] > 0]
    ranked = sorted(eligible, key=lambda i: -bids[i] * quality[i])
    k = min(len(ctrs), len(ranked))
    scores = [bids[i] * quality[i] for i in ranked] + [0.0]
    prices = []
    for j in range(k):
        i = ranked[j]
        if mechanism == "first_price":
            prices.append(bids[i])
        elif mechanism in ("second_price", "gsp"):
            prices.append(max(reserve, scores[j + 1] / quality[i]))
        else:  # VCG: threshold payments summed over the slots below
            ctr = [*ctrs[:k], 0.0]
            total = sum(
                (ctr[s] - ctr[s + 1]) * max(reserve, scores[s + 1] / quality[i])
                for s in range(j, k)
            )
            prices.append(total / ctrs[j])
    payments = np.zeros(n)
    for j in range(k):
        payments[ranked[j]] = prices[j] * ctrs[j]
    return np.array(ranked[:k], dtype=int), np.array(prices), payments


# --- textbook cases -------------------------------------------------------------------------


def test_second_price_pays_second_bid():
    out = run_auction([5.0, 8.0, 3.0])
    assert out.winners.tolist() == [1]
    assert out.prices.tolist() == [5.0]
    assert out.payments.tolist() == [0.0, 5.0, 0.0]


@pytest.mark.parametrize(("reserve", "price"), [(4.0, 5.0), (6.0, 6.0), (8.0, 8.0)])
def test_second_price_with_reserve(reserve, price):
    out = run_auction([5.0, 8.0, 3.0], reserve=reserve)
    assert out.winners.tolist() == [1]
    assert out.prices.tolist() == [price]


def test_reserve_above_every_bid_sells_nothing():
    out = run_auction([5.0, 8.0], reserve=9.0)
    assert out.winners.size == 0 and out.payments.sum() == 0.0


def test_sole_eligible_bidder_pays_reserve():
    out = run_auction([2.0, 7.0, 0.0], reserve=3.0)
    assert out.winners.tolist() == [1] and out.prices.tolist() == [3.0]


def test_zero_bid_never_wins():
    assert run_auction([0.0, 0.0]).winners.size == 0


def test_ties_are_uniform_not_by_index():
    rng = np.random.default_rng(7)
    wins = np.bincount(
        [run_auction([3.0, 1.0, 3.0, 3.0], rng=rng).winners[0] for _ in range(3000)], minlength=4
    )
    assert wins[1] == 0
    assert all(850 < wins[i] < 1150 for i in (0, 2, 3)), wins


def test_tied_winner_pays_the_tied_bid():
    out = run_auction([4.0, 4.0], rng=0)
    assert out.prices.tolist() == [4.0]


def test_gsp_vs_vcg_edelman_ostrovsky_schwarz():
    # EOS (2007): CTRs 200/100 per hour, values 10, 4, 2 (normalised CTRs 1, 0.5).
    bids, ctrs = [10.0, 4.0, 2.0], [1.0, 0.5]
    gsp = run_auction(bids, mechanism="gsp", slot_ctrs=ctrs)
    vcg = run_auction(bids, mechanism="vcg", slot_ctrs=ctrs)
    assert gsp.winners.tolist() == vcg.winners.tolist() == [0, 1]
    assert gsp.prices.tolist() == [4.0, 2.0]
    # VCG: top pays (1 - 0.5) x 4 + 0.5 x 2 = 3 per click; slot 2 pays 2.
    np.testing.assert_allclose(vcg.prices, [3.0, 2.0])
    np.testing.assert_allclose(vcg.payments, [3.0, 1.0, 0.0])


def test_vcg_fewer_bidders_than_slots():
    out = run_auction([10.0, 8.0, 5.0], mechanism="vcg", slot_ctrs=[1.0, 0.5, 0.2, 0.1])
    assert out.winners.tolist() == [0, 1, 2]
    np.testing.assert_allclose(out.payments, [0.5 * 8 + 0.3 * 5, 0.3 * 5, 0.0])


def test_quality_weighted_ranking_and_price():
    out = run_auction([5.0, 4.0, 1.0], quality=[0.1, 1.0, 1.0])
    assert out.winners.tolist() == [1]
    assert out.prices.tolist() == [1.0]  # next score 1 x 1 over own quality 1


def test_first_price_pays_own_bid():
    assert run_auction([5.0, 8.0], mechanism="first_price").prices.tolist() == [8.0]


def test_slot_ctr_scales_payment():
    out = run_auction([5.0, 8.0], slot_ctrs=[0.25])
    assert out.prices.tolist() == [5.0] and out.payments.tolist() == [0.0, 1.25]


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"bids": [1.0, -1.0]}, "bids must be finite and >= 0"),
        ({"bids": [1.0, np.nan]}, "bids must be finite"),
        ({"bids": [[1.0]]}, "1-D"),
        ({"bids": [1.0], "mechanism": "dutch"}, "allowed: first_price, gsp, second_price, vcg"),
        ({"bids": [1.0, 2.0], "slot_ctrs": [1.0, 0.5]}, "use 'gsp' or 'vcg'"),
        ({"bids": [1.0], "mechanism": "gsp", "slot_ctrs": [0.5, 1.0]}, "non-increasing"),
        ({"bids": [1.0], "slot_ctrs": [0.0]}, "slot_ctrs must be finite and > 0"),
        ({"bids": [1.0, 2.0], "quality": [1.0, 0.0]}, "quality must be finite and > 0"),
        ({"bids": [1.0, 2.0], "quality": [1.0]}, "quality must have the bids' shape"),
        ({"bids": [1.0], "reserve": -1.0}, "reserve must be finite and >= 0"),
    ],
)
def test_bad_input_is_named(kwargs, match):
    with pytest.raises(AuctionError, match=match):
        run_auction(**kwargs)


# --- properties -----------------------------------------------------------------------------

bid_values = st.floats(0.0, 100.0, allow_nan=False, width=32)


@st.composite
def instances(draw, unique=False):
    n = draw(st.integers(1, 8))
    elements = st.floats(0.125, 100.0, width=32) if unique else bid_values
    bids = draw(arrays(np.float64, n, elements=elements, unique=unique))
    mechanism = draw(st.sampled_from(MECHS))
    k = 1 if mechanism in ("second_price", "first_price") else draw(st.integers(1, 4))
    ctrs = np.sort(draw(arrays(np.float64, k, elements=st.floats(0.125, 1.0, width=32))))[::-1]
    reserve = draw(st.sampled_from([0.0, 0.5, 10.0]))
    quality = draw(
        st.none() | arrays(np.float64, n, elements=st.sampled_from([0.25, 0.5, 1.0, 2.0]))
    )
    return bids, mechanism, ctrs, reserve, quality


@given(instances(), st.integers(0, 2**32 - 1))
def test_losers_pay_nothing_and_winners_at_most_their_bid(inst, seed):
    bids, mechanism, ctrs, reserve, quality = inst
    out = run_auction(
        bids, mechanism=mechanism, slot_ctrs=ctrs, reserve=reserve, quality=quality, rng=seed
    )
    losers = np.setdiff1d(np.arange(bids.size), out.winners)
    assert (out.payments[losers] == 0).all()
    assert (out.prices <= bids[out.winners] + 1e-9).all()
    assert (out.prices >= reserve - 1e-12).all()
    assert len(set(out.winners.tolist())) == out.winners.size
    np.testing.assert_allclose(out.payments[out.winners], out.prices * out.slot_ctrs)


@given(instances(), st.integers(-4, 4), st.integers(0, 2**32 - 1))
def test_scaling_bids_and_reserve_scales_prices(inst, power, seed):
    bids, mechanism, ctrs, reserve, quality = inst
    c = 2.0**power  # a power of two scales floats exactly, so ties stay ties
    kw = {"mechanism": mechanism, "slot_ctrs": ctrs, "quality": quality}
    base = run_auction(bids, reserve=reserve, rng=seed, **kw)
    scaled = run_auction(bids * c, reserve=reserve * c, rng=seed, **kw)
    assert scaled.winners.tolist() == base.winners.tolist()
    np.testing.assert_allclose(scaled.prices, base.prices * c, rtol=1e-12)


@given(instances(unique=True), st.randoms(use_true_random=False))
def test_permuting_bidders_permutes_outcome(inst, random):
    bids, mechanism, ctrs, reserve, quality = inst
    q = np.ones_like(bids) if quality is None else quality
    assume(np.unique(bids * q).size == bids.size)
    perm = np.array(random.sample(range(bids.size), bids.size))
    kw = {"mechanism": mechanism, "slot_ctrs": ctrs, "reserve": reserve}
    base = run_auction(bids, quality=q, **kw)
    permuted = run_auction(bids[perm], quality=q[perm], **kw)
    assert perm[permuted.winners].tolist() == base.winners.tolist()
    np.testing.assert_allclose(permuted.prices, base.prices)
    np.testing.assert_allclose(permuted.payments, base.payments[perm])


@given(instances(unique=True))
def test_matches_textbook_reference(inst):
    bids, mechanism, ctrs, reserve, quality = inst
    q = np.ones_like(bids) if quality is None else quality
    assume(np.unique(bids * q).size == bids.size)
    out = run_auction(bids, mechanism=mechanism, slot_ctrs=ctrs, reserve=reserve, quality=q)
    winners, prices, payments = reference_auction(bids, mechanism, ctrs, reserve, q)
    assert out.winners.tolist() == winners.tolist()
    np.testing.assert_allclose(out.prices, prices, rtol=1e-12)
    np.testing.assert_allclose(out.payments, payments, rtol=1e-12, atol=1e-12)


@given(instances(), st.integers(0, 2**32 - 1))
def test_same_seed_same_result(inst, seed):
    bids, mechanism, ctrs, reserve, quality = inst
    kw = {"mechanism": mechanism, "slot_ctrs": ctrs, "reserve": reserve, "quality": quality}
    a, b = run_auction(bids, rng=seed, **kw), run_auction(bids, rng=seed, **kw)
    assert a.winners.tolist() == b.winners.tolist()
    np.testing.assert_array_equal(a.payments, b.payments)


@given(
    st.integers(1, 12),
    st.integers(1, 30),
    st.sampled_from(MECHS),
    st.booleans(),
    st.integers(0, 2**32 - 1),
)
def test_batch_equals_single_calls_ties_included(n, a, mechanism, with_quality, seed):
    data = np.random.default_rng(seed)
    bids = data.integers(0, 4, size=(a, n)).astype(float)  # small integers: many ties
    quality = data.choice([0.5, 1.0], size=(a, n)) if with_quality else None
    k = 1 if mechanism in ("second_price", "first_price") else 3
    ctrs = [1.0, 0.6, 0.3][:k]
    reserve = data.choice([0.0, 1.0], size=a)
    batch = run_auctions(
        bids, mechanism=mechanism, slot_ctrs=ctrs, reserve=reserve, quality=quality, rng=seed
    )
    rng = np.random.default_rng(seed)
    for i in range(a):
        one = run_auction(
            bids[i],
            mechanism=mechanism,
            slot_ctrs=ctrs,
            reserve=float(reserve[i]),
            quality=None if quality is None else quality[i],
            rng=rng,
        )
        assert batch[i].winners.tolist() == one.winners.tolist()
        np.testing.assert_array_equal(batch[i].prices, one.prices)
        np.testing.assert_array_equal(batch.payments[i], one.payments)


def test_batch_shapes_and_empty_slots():
    out = run_auctions([[1.0, 0.0], [0.0, 0.0]], mechanism="gsp", slot_ctrs=[1.0, 0.5])
    assert out.winners.tolist() == [[0, -1], [-1, -1]]
    assert out.prices.shape == (2, 2) and out.payments.shape == (2, 2)
    assert len(out) == 2 and out.revenue.tolist() == [0.0, 0.0]


# --- float range: bid x quality ranked in float64's normal range ----------------------------


def test_overflowing_score_still_fills_the_slot():
    # 1e308 x 10 overflows float64; ranking is by ratios, so bidder 0 wins and pays the
    # threshold 1 x 1 / 10 = 0.1 per click (hand computation).
    out = run_auction([1e308, 1.0], quality=[10.0, 1.0])
    assert out.winners.tolist() == [0]
    np.testing.assert_allclose(out.prices, [0.1], rtol=1e-15)
    # Two slots (CTRs 1, 0.5): GSP charges 0.1 then the reserve 0; VCG charges the top slot
    # (1 - 0.5) x 0.1 + 0.5 x 0 = 0.05.
    for mech, prices in (("gsp", [0.1, 0.0]), ("vcg", [0.05, 0.0])):
        out = run_auction([1e308, 1.0], quality=[10.0, 1.0], mechanism=mech, slot_ctrs=[1, 0.5])
        assert out.winners.tolist() == [0, 1]
        np.testing.assert_allclose(out.prices, prices, rtol=1e-15)


def test_tied_winner_never_pays_above_its_bid_after_rounding():
    # (b x q) / q rounds one ulp above b for these values; in a tie the price is the bid.
    b, q = 0.6706244146936303, 0.04689014385871493
    assert (b * q) / q > b
    for mech in MECHS:
        assert run_auction([b, b], quality=[q, q], mechanism=mech, rng=0).prices.tolist() == [b]


def test_subnormal_qualities_do_not_fake_a_tie():
    # 0.9 x 5e-324 and 1.0 x 5e-324 both round to 5e-324: equal qualities must not matter, so
    # bidder 1 wins and pays bidder 0's bid 0.9 (never more than its own bid).
    for seed in range(20):
        out = run_auction([0.9, 1.0], quality=[5e-324, 5e-324], rng=seed)
        assert out.winners.tolist() == [1] and out.prices.tolist() == [0.9]


def test_unrankable_bid_times_quality_is_named():
    with pytest.raises(AuctionError, match="bid x quality leaves float64's normal range"):
        # 1e-10 x 1e-300 is subnormal, and a quality spread of 1e600 cannot be rescaled.
        run_auction([1e-10, 1.0], quality=[1e-300, 1e300])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_quality_is_refused(bad):
    with pytest.raises(AuctionError, match="quality must be finite and > 0"):
        run_auctions([[1.0, 2.0]], quality=[1.0, bad])


@given(instances(), st.integers(-1070, 1020), st.integers(0, 2**32 - 1))
def test_only_quality_ratios_matter_even_far_outside_normal_range(inst, power, seed):
    # Multiplying every quality of an auction by 2**power is exact in real arithmetic and must
    # not change the outcome, even where bid x quality over/underflows float64.
    bids, mechanism, ctrs, reserve, quality = inst
    q = np.ones_like(bids) if quality is None else quality
    kw = {"mechanism": mechanism, "slot_ctrs": ctrs, "reserve": reserve, "rng": seed}
    base = run_auction(bids, quality=q, **kw)
    scaled = run_auction(bids, quality=q * 2.0**power, **kw)
    assert scaled.winners.tolist() == base.winners.tolist()
    np.testing.assert_array_equal(scaled.prices, base.prices)
    assert (scaled.prices <= bids[scaled.winners]).all()
