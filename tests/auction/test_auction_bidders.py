"""Bidders, budgets and the budget-safe batch runner."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from auction import AuctionError, run_auctions
from auction.bidders import (
    STRATEGIES,
    Bidder,
    Budget,
    Exp3Bidder,
    PacingBidder,
    ShadingBidder,
    Throttle,
    TruthfulBidder,
    make_bidder,
    pay_per_click,
    play_repeated,
    run_budgeted_auctions,
)

money = st.floats(0.0, 20.0, allow_nan=False)


# --- Budget and the static bidders ----------------------------------------------------------


def test_budget_caps_bids_and_refuses_overspending():
    b = Budget(5.0)
    b.charge(3.0)
    assert b.remaining == 2.0
    assert b.cap(np.array([1.0, 4.0])).tolist() == [1.0, 2.0]
    with pytest.raises(AuctionError, match="exceeds the remaining budget"):
        b.charge(2.5)


@pytest.mark.parametrize("total", [-1.0, math.nan])
def test_budget_rejects_bad_totals(total):
    with pytest.raises(AuctionError, match="budget"):
        Budget(total)


def test_truthful_and_shading_bids():
    assert TruthfulBidder().bid([3.0, 1.0]).tolist() == [3.0, 1.0]
    assert ShadingBidder(0.5).bid([4.0, 2.0]).tolist() == [2.0, 1.0]
    assert isinstance(TruthfulBidder(), Bidder)


@pytest.mark.parametrize("factor", [0.0, -1.0, math.inf])
def test_shading_rejects_bad_factor(factor):
    with pytest.raises(AuctionError, match="factor"):
        ShadingBidder(factor)


def test_bid_rejects_bad_values():
    with pytest.raises(AuctionError, match="values"):
        TruthfulBidder().bid([[1.0]])
    with pytest.raises(AuctionError, match="values"):
        TruthfulBidder().bid([-1.0])


def test_update_must_match_last_bid():
    bidder = TruthfulBidder()
    bidder.bid([1.0, 2.0])
    with pytest.raises(AuctionError, match=r"shape \(2,\)"):
        bidder.update(won=[True], payments=[1.0], clicks=[1.0])
    with pytest.raises(AuctionError, match="clicks"):
        bidder.update(won=[True, False], payments=[1.0, 0.0], clicks=[-1.0, 0.0])


def test_update_charges_the_budget():
    bidder = ShadingBidder(0.5, budget=4.0)
    assert bidder.bid([10.0]).tolist() == [4.0]
    bidder.update(won=[True], payments=[3.0], clicks=[1.0])
    assert bidder.budget.remaining == 1.0 and bidder.bid([10.0]).tolist() == [1.0]


@pytest.mark.parametrize(
    ("strategy", "kind"),
    [("truthful", TruthfulBidder), ("shading", ShadingBidder), ("bandit", Exp3Bidder)],
)
def test_make_bidder_by_name(strategy, kind):
    assert type(make_bidder(strategy, budget=3.0, rng=0)) is kind
    paced = make_bidder("paced", budget=3.0, horizon=10)
    assert isinstance(paced, PacingBidder) and paced.target_rate == 0.3


def test_make_bidder_rejects_unknown_or_incomplete():
    with pytest.raises(AuctionError, match="allowed: truthful"):
        make_bidder("greedy")
    with pytest.raises(AuctionError, match="horizon"):
        make_bidder("paced", budget=3.0)


@given(
    values=arrays(np.float64, st.integers(1, 8), elements=money),
    budget=money,
    spent=st.floats(0.0, 1.0),
    factor=st.floats(0.1, 3.0),
)
def test_no_bid_exceeds_the_remaining_budget(values, budget, spent, factor):
    for bidder in (ShadingBidder(factor, budget=budget), Exp3Bidder(budget=budget, rng=0)):
        bidder.budget.charge(spent * budget)
        assert (bidder.bid(values) <= bidder.budget.remaining).all()


# --- run_budgeted_auctions ----------------------------------------------------------------


def test_budgeted_bidder_leaves_when_it_cannot_pay():
    res = run_budgeted_auctions([[5.0, 3.0], [5.0, 3.0], [5.0, 3.0]], [3.0, 10.0])
    assert res.left_at.tolist() == [1, 3]
    assert res.outcome.winners[:, 0].tolist() == [0, 1, 1]
    assert res.spent.tolist() == [3.0, 0.0]  # bidder 1 is then alone and pays the 0 reserve


def test_exclusion_promotes_the_next_bidder_who_may_leave_too():
    # Bidder 0 cannot pay in auction 1; bidder 1 inherits the win at price 2 but has only 1.
    res = run_budgeted_auctions([[5.0, 3.0, 2.0], [5.0, 3.0, 2.0]], [3.0, 1.0, 9.0])
    assert res.left_at.tolist() == [1, 1, 2]
    assert res.outcome.winners[:, 0].tolist() == [0, 2]
    assert res.spent.tolist() == [3.0, 0.0, 0.0]


def test_pay_per_click_charges_realised_clicks_only():
    bids = [[5.0, 3.0], [5.0, 3.0]]
    res = run_budgeted_auctions(bids, [3.0, 3.0], charge=pay_per_click(np.array([[0], [1]])))
    assert res.left_at.tolist() == [2, 2] and res.spent.tolist() == [3.0, 0.0]


def test_charge_must_bill_winners_only():
    with pytest.raises(AuctionError, match="won no slot"):
        run_budgeted_auctions([[5.0, 3.0]], [9.0, 9.0], charge=lambda o: np.ones((1, 2)))
    with pytest.raises(AuctionError, match="shape"):
        run_budgeted_auctions([[5.0, 3.0]], [9.0, 9.0], charge=lambda o: np.ones(2))


@pytest.mark.parametrize("budgets", [[1.0], [1.0, -1.0], [1.0, math.nan]])
def test_budgets_are_validated(budgets):
    with pytest.raises(AuctionError, match="budgets"):
        run_budgeted_auctions([[5.0, 3.0]], budgets)


@st.composite
def budgeted_batches(draw):
    a, n = draw(st.integers(1, 12)), draw(st.integers(1, 5))
    mechanism = draw(st.sampled_from(["second_price", "first_price", "gsp", "vcg"]))
    k = 1 if mechanism in ("second_price", "first_price") else draw(st.integers(1, 3))
    ctrs = sorted(draw(st.lists(st.floats(0.1, 1.0), min_size=k, max_size=k)), reverse=True)
    bids = draw(arrays(np.float64, (a, n), elements=st.sampled_from([0.0, 1.0, 2.5, 4.0, 7.0])))
    budgets = draw(arrays(np.float64, n, elements=st.floats(0.0, 15.0) | st.just(math.inf)))
    reserve = draw(st.sampled_from([0.0, 1.5]))
    clicks = draw(arrays(np.float64, (a, k), elements=st.sampled_from([0.0, 1.0])))
    kwargs = {"mechanism": mechanism, "slot_ctrs": ctrs, "reserve": reserve}
    return bids, budgets, clicks, kwargs


@given(batch=budgeted_batches(), per_click=st.booleans(), seed=st.integers(0, 2**16))
def test_no_bidder_is_ever_charged_beyond_its_budget(batch, per_click, seed):
    bids, budgets, clicks, kwargs = batch
    charge = pay_per_click(clicks) if per_click else None
    res = run_budgeted_auctions(bids, budgets, charge=charge, rng=seed, **kwargs)
    assert (res.spent <= budgets + 1e-9 * np.maximum(1.0, budgets)).all()
    a = bids.shape[0]
    rows = np.arange(a)[:, None]
    assert (res.charges[rows >= res.left_at] == 0).all()  # leavers pay nothing afterwards
    # Auctions before anyone leaves are exactly the unconstrained ones (same tie seed).
    settled = int(res.left_at.min())
    free = run_budgeted_auctions(bids, np.full(bids.shape[1], math.inf), rng=seed, **kwargs)
    np.testing.assert_array_equal(res.outcome.winners[:settled], free.outcome.winners[:settled])


@given(batch=budgeted_batches())
def test_unlimited_budgets_change_nothing(batch):
    bids, _, _, kwargs = batch
    res = run_budgeted_auctions(bids, np.full(bids.shape[1], math.inf), **kwargs)
    direct = run_auctions(bids, **kwargs)
    # Ties may go another way (another draw), but who pays what up to the names is the same.
    np.testing.assert_array_equal(
        np.sort(res.outcome.payments, axis=1), np.sort(direct.payments, axis=1)
    )
    assert (res.left_at == bids.shape[0]).all()


# --- learning and pacing in repeated auctions ------------------------------------------------


def uniform_values(rounds, auctions, bidders, seed):
    return np.random.default_rng(seed).random((rounds, auctions, bidders))


@pytest.mark.parametrize("seed", [0, 1])
def test_exp3_learns_truthful_bidding_in_second_price(seed):
    learner = Exp3Bidder(rng=seed)
    play_repeated([learner, TruthfulBidder()], uniform_values(400, 100, 2, seed), rng=seed)
    assert 0.85 <= learner.mean_factor <= 1.15


@pytest.mark.parametrize("seed", [0, 1])
def test_exp3_learns_to_shade_in_first_price(seed):
    # Against one truthful rival with a U(0, 1) value the best factor is 1/2.
    learner = Exp3Bidder(rng=seed)
    values = uniform_values(400, 100, 2, seed)
    play_repeated([learner, TruthfulBidder()], values, mechanism="first_price", rng=seed)
    assert 0.35 <= learner.mean_factor <= 0.7
    assert learner.probabilities[learner.factors >= 1.0].sum() < 0.15


def test_exp3_is_reproducible_and_a_distribution():
    runs = []
    for _ in range(2):
        learner = Exp3Bidder(rng=3)
        play_repeated([learner, TruthfulBidder()], uniform_values(20, 10, 2, 3), rng=3)
        runs.append(learner.probabilities)
    np.testing.assert_array_equal(runs[0], runs[1])
    assert runs[0].sum() == pytest.approx(1.0)


@pytest.mark.parametrize(
    "kwargs", [{"factors": []}, {"learning_rate": 0.0}, {"exploration": 1.0}, {"reward_scale": -1}]
)
def test_exp3_rejects_bad_parameters(kwargs):
    with pytest.raises(AuctionError):
        Exp3Bidder(**kwargs)


def test_pacing_spreads_the_budget_over_the_horizon():
    rounds, m, budget = 200, 50, 300.0
    values = uniform_values(rounds, m, 2, 1)
    pacer, eager = PacingBidder(budget, rounds * m), TruthfulBidder(budget=budget)
    paced = play_repeated([pacer, TruthfulBidder()], values, rng=0)
    greedy = play_repeated([eager, TruthfulBidder()], values, rng=0)
    spent = np.cumsum(paced.spend[:, 0])
    assert spent[-1] <= budget and spent[-1] >= 0.95 * budget
    assert abs(spent[rounds // 2 - 1] - budget / 2) < 0.1 * budget  # on pace at half time
    assert np.cumsum(greedy.spend[:, 0])[rounds // 4] >= 0.99 * budget  # truthful runs dry
    assert paced.utilities[:, 0].sum() > 2 * greedy.utilities[:, 0].sum()


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [((0.0, 10), {}), ((1.0, 0), {}), ((1.0, 10), {"step_size": -1.0})],
)
def test_pacing_rejects_bad_parameters(args, kwargs):
    with pytest.raises(AuctionError):
        PacingBidder(*args, **kwargs)


@given(
    budgets=st.lists(st.floats(0.0, 5.0), min_size=3, max_size=3),
    sampled=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_repeated_play_never_overspends(budgets, sampled, seed):
    bidders = [
        TruthfulBidder(budget=budgets[0]),
        Exp3Bidder(budget=budgets[1], rng=seed),
        PacingBidder(budgets[2] + 0.1, 40),
    ]
    values = uniform_values(4, 10, 3, seed) * 3
    clicks = "sampled" if sampled else "expected"
    hist = play_repeated(bidders, values, clicks=clicks, mechanism="gsp", slot_ctrs=[0.5, 0.2])
    for bidder, spent in zip(bidders, hist.spend.sum(axis=0), strict=True):
        assert spent <= bidder.budget.total + 1e-9
        assert bidder.budget.spent == pytest.approx(spent)
    np.testing.assert_allclose(hist.revenue, hist.spend.sum(axis=1))


def test_play_repeated_validates_input():
    with pytest.raises(AuctionError, match="rounds, auctions"):
        play_repeated([TruthfulBidder()], np.ones((2, 3, 2)))
    with pytest.raises(AuctionError, match="clicks"):
        play_repeated([TruthfulBidder()], np.ones((1, 1, 1)), clicks="real")


# --- Throttle: budgets that last the horizon, for every strategy -----------------------------


def test_throttle_participation_follows_spend_over_the_share_left():
    # budget 12 over 12 auctions, batches of 3 (hand computation): the first batch may cost
    # min(12, 2 x 1 x 3) = 6; spending 6 against the target 12 x 3 / 12 = 3 halves p.
    t = Throttle(12.0, 12, burst=2.0, rng=0)
    entered, allowance = t.plan(3, remaining=12.0)
    assert entered.all() and allowance == 6.0
    t.observe(6.0)
    assert t.participation == 0.5
    # 6 left over 9 auctions: target 6 x 3 / 9 = 2; spending 1 at p = 0.5 asks for p = 1.
    assert t.plan(3, remaining=6.0)[1] == 6.0
    t.observe(1.0)
    assert t.participation == 1.0
    # the allowance never exceeds what is left, and spending nothing enters every auction
    assert t.plan(3, remaining=0.5)[1] == 0.5
    t.observe(0.0)
    assert t.participation == 1.0


def test_throttle_enters_a_share_p_of_the_auctions():
    t = Throttle(1.0, 10**6, rng=1)
    t.participation = 0.3
    entered, _ = t.plan(20_000, remaining=1.0)
    assert entered.mean() == pytest.approx(0.3, abs=0.015)  # 4.6 binomial sd


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((0.0, 10), {}, "budget"),
        ((math.inf, 10), {}, "budget"),
        ((1.0, 0), {}, "horizon"),
        ((1.0, 2.5), {}, "horizon"),
        ((1.0, 10), {"burst": 0.5}, "burst"),
        ((1.0, 10), {"burst": math.nan}, "burst"),
    ],
)
def test_throttle_rejects_bad_arguments(args, kwargs, match):
    with pytest.raises(AuctionError, match=match):
        Throttle(*args, **kwargs)


def test_throttled_bidder_bids_its_strategy_or_nothing_and_learns_from_entered_auctions():
    bidder = ShadingBidder(0.5, budget=100.0, throttle=Throttle(100.0, 100, rng=2))
    bidder.throttle.participation = 0.5
    bids = bidder.bid(np.full(40, 4.0))
    assert set(bids.tolist()) == {0.0, 2.0}  # shading kept where it bids
    with pytest.raises(AuctionError, match="allowance"):  # 2 shares x 40 auctions = 80
        bidder.update(won=bids > 0, payments=np.full(40, 2.5), clicks=np.ones(40))


def test_an_unthrottled_bidder_may_spend_its_whole_budget_at_once():
    bidder = TruthfulBidder(budget=9.0)
    bidder.bid([5.0, 5.0])
    assert bidder.allowance == 9.0
    bidder.update(won=[True, True], payments=[4.5, 4.5], clicks=[1.0, 1.0])
    assert bidder.budget.remaining == 0.0


@given(
    strategy=st.sampled_from(STRATEGIES),
    budget=st.floats(0.5, 50.0),
    batches=st.integers(2, 8),
    burst=st.floats(1.0, 4.0),
    rival=st.floats(0.0, 3.0),
    seed=st.integers(0, 2**16),
)
def test_throttled_spend_stays_within_burst_shares_per_batch(
    strategy, budget, batches, burst, rival, seed
):
    """Every strategy, against a rival bidding ``rival``: no batch costs more than ``burst``
    per-auction shares times its size, and the budget is never overspent."""
    m = 10
    horizon = batches * m
    bidder = make_bidder(strategy, budget=budget, horizon=horizon, burst=burst, rng=seed)
    rng = np.random.default_rng(seed)
    values = rng.uniform(0.0, 5.0, (batches, m, 2))
    values[..., 1] = rival
    hist = play_repeated([bidder, TruthfulBidder()], values, rng=seed)
    share = budget / horizon
    assert (hist.spend[:, 0] <= burst * share * m * (1 + 1e-9)).all()
    assert hist.spend[:, 0].sum() <= budget * (1 + 1e-9)
