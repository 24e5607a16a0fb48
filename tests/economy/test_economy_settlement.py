"""The windowed budget settlement of the fast path is ``run_budgeted_auctions``'s rule."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from auction.bidders import pay_per_click, run_budgeted_auctions
from economy.settlement import settle_in_windows


@st.composite
def batches(draw):
    a, n = draw(st.integers(1, 40)), draw(st.integers(1, 6))
    mechanism = draw(st.sampled_from(["second_price", "first_price", "gsp", "vcg"]))
    k = 1 if mechanism in ("second_price", "first_price") else draw(st.integers(1, 3))
    ctrs = sorted(draw(st.lists(st.floats(0.1, 1.0), min_size=k, max_size=k)), reverse=True)
    seed = draw(st.integers(0, 2**16))
    gen = np.random.default_rng(seed)
    # Continuous bids and qualities: no ties, so both settle the same auctions the same way.
    bids = gen.uniform(0.1, 5.0, (a, n)) * (gen.random((a, n)) < 0.8)
    quality = gen.uniform(0.2, 1.0, (a, n))
    budgets = np.where(gen.random(n) < 0.2, math.inf, gen.uniform(0.0, 8.0, n))
    clicks = (gen.random((a, k)) < 0.5).astype(float)
    kwargs = {"mechanism": mechanism, "slot_ctrs": ctrs, "reserve": draw(st.sampled_from([0, 1.0]))}
    return bids, quality, budgets, clicks, kwargs


@settings(max_examples=150, deadline=None)
@given(batch=batches(), window=st.integers(1, 50))
def test_windows_settle_like_the_whole_batch(batch, window):
    bids, quality, budgets, clicks, kwargs = batch
    whole = run_budgeted_auctions(
        bids, budgets, charge=pay_per_click(clicks), quality=quality, rng=0, **kwargs
    )

    def charge(out, rows):
        return pay_per_click(clicks[rows])(out)

    part = settle_in_windows(
        bids,
        budgets,
        charge=charge,
        quality=quality,
        rng=np.random.default_rng(0),
        window=window,
        **kwargs,
    )
    np.testing.assert_array_equal(part.winners, whole.outcome.winners)
    np.testing.assert_allclose(part.prices, whole.outcome.prices)
    np.testing.assert_allclose(part.spent, whole.spent)
    np.testing.assert_array_equal(part.left_at, whole.left_at)
    assert (part.spent <= budgets + 1e-9 * np.maximum(1.0, budgets)).all()


@given(batch=batches(), window=st.integers(1, 50), seed=st.integers(0, 2**16))
def test_ties_never_overspend_and_leavers_pay_nothing_after(batch, window, seed):
    bids, _, budgets, clicks, kwargs = batch
    bids = np.round(bids)  # many ties
    part = settle_in_windows(
        bids,
        budgets,
        charge=lambda out, rows: pay_per_click(clicks[rows])(out),
        rng=np.random.default_rng(seed),
        window=window,
        **kwargs,
    )
    assert (part.spent <= budgets + 1e-9 * np.maximum(1.0, budgets)).all()
    for bidder, t in enumerate(part.left_at):
        assert not (part.winners[t:] == bidder).any()  # a leaver wins nothing more
