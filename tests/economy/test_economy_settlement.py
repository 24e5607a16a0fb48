"""The windowed budget settlement of the fast path is ``run_budgeted_auctions``'s rule."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from auction import run_auctions
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


def _per_click_settlement(bids, budgets, clicks, window, seed, **kwargs):
    """``settle_in_windows`` billing the per-click price of each slot's realised clicks."""
    return settle_in_windows(
        bids,
        budgets,
        charge=lambda out, rows: out.prices * clicks[rows],
        rng=np.random.default_rng(seed),
        window=window,
        **kwargs,
    )


@settings(max_examples=150, deadline=None)
@given(batch=batches(), window=st.integers(1, 50))
def test_windows_settle_like_the_whole_batch(batch, window):
    bids, quality, budgets, clicks, kwargs = batch
    whole = run_budgeted_auctions(
        bids, budgets, charge=pay_per_click(clicks), quality=quality, rng=0, **kwargs
    )

    def charge(out, rows):
        return out.prices * clicks[rows]

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
    part = _per_click_settlement(bids, budgets, clicks, window, seed, **kwargs)
    assert (part.spent <= budgets + 1e-9 * np.maximum(1.0, budgets)).all()
    for bidder, t in enumerate(part.left_at):
        assert not (part.winners[t:] == bidder).any()  # a leaver wins nothing more


def _dense_settlement(bids, budgets, clicks, window, rng, **kwargs):
    """The settlement as it was written before per-slot charges (issue 18): each window's
    charges as a dense (rows, n) matrix, column sums and running sums over all of it."""
    a, n = bids.shape
    left, left_at, spent = budgets.astype(float), np.full(n, a), np.zeros(n)
    winners, prices, pos = [], [], 0
    while pos < a:
        rows = slice(pos, min(a, pos + window))
        gone = left_at < a
        out = run_auctions(np.where(gone, 0.0, bids[rows]), rng=rng, **kwargs)
        cost = pay_per_click(clicks[rows])(out)  # (rows, n): zeros but at the slot winners
        short = np.flatnonzero(cost.sum(axis=0) > left)
        keep = rows.stop - pos
        if short.size:
            first = (np.cumsum(cost[:, short], axis=0) > left[short]).argmax(axis=0)
            keep = int(first.min())
            left_at[short[first == keep]] = pos + keep
        winners.append(out.winners[:keep])
        prices.append(out.prices[:keep])
        spent += cost[:keep].sum(axis=0)
        left = np.maximum(budgets - spent, 0.0)
        pos += keep
    return np.concatenate(winners), np.concatenate(prices), left_at, spent


@st.composite
def long_batches(draw):
    """Hundreds of auctions, budgets for a share of them: many departures, long sums."""
    a, n = draw(st.integers(50, 400)), draw(st.integers(2, 8))
    mechanism = draw(st.sampled_from(["second_price", "gsp", "vcg"]))
    k = 1 if mechanism == "second_price" else draw(st.integers(1, 3))
    gen = np.random.default_rng(draw(st.integers(0, 2**16)))
    bids = gen.uniform(0.1, 5.0, (a, n)) * (gen.random((a, n)) < 0.8)
    if draw(st.booleans()):
        bids = np.round(bids, 1)  # ties, broken by random draws
    budgets = gen.uniform(0.0, 0.5, n) * a / n
    clicks = (gen.random((a, k)) < 0.6).astype(float)
    kwargs = {"mechanism": mechanism, "slot_ctrs": np.linspace(1.0, 0.4, k).tolist()}
    return bids, budgets, clicks, kwargs


@settings(max_examples=60, deadline=None)
@given(batch=long_batches(), window=st.integers(1, 64), seed=st.integers(0, 2**16))
def test_per_slot_charges_settle_bit_for_bit_like_dense_ones(batch, window, seed):
    """Summing charges per filled slot in row order adds the same numbers in the same order
    as the dense column sums (whose other entries are 0): equal to the last bit, ties and
    their random draws included."""
    bids, budgets, clicks, kwargs = batch
    want = _dense_settlement(bids, budgets, clicks, window, np.random.default_rng(seed), **kwargs)
    got = _per_click_settlement(bids, budgets, clicks, window, seed, **kwargs)
    for have, expected in zip((got.winners, got.prices, got.left_at, got.spent), want, strict=True):
        np.testing.assert_array_equal(have, expected)
