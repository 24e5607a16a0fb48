"""Learners batched over repetitions, the repeated-auction arena and its metrics."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from auction import (
    ArenaConfig,
    AuctionError,
    HedgeLearner,
    PacingLearner,
    QLearner,
    UCBLearner,
    arena_metrics,
    mean_ci,
    run_arena,
    run_auctions,
)
from auction.arena_stats import converged_at
from auction.bidders import Feedback, StaticLearner, Streams, repetition_seeds
from auction.collusion import screen_bid_log

GRID = np.round(np.linspace(0.05, 1.0, 20), 10)

# --- each learner beats random bidding on a stationary bandit ---------------------------------


def play_against_uniform_rival(learner, rounds: int, full_information: bool) -> float:
    """First price, value 1, one rival bidding U(0, 1): bid b earns (1 - b) b in expectation.

    Returns the learner's mean realised utility over the last fifth of the rounds.
    """
    reps = learner.repetitions
    rng = np.random.default_rng(123)
    got = []
    for _ in range(rounds):
        b = learner.bid(np.ones(reps))
        rival = rng.random(reps)
        won = b > rival
        feedback = None
        if full_information:

            def what_if(c, rival=rival):
                return (1.0 - c) * (c > rival[:, None])

            feedback = Feedback(price=np.full(reps, np.nan), min_bid=rival, counterfactual=what_if)
        learner.update(won=won, payments=np.where(won, b, 0.0), clicks=won * 1.0, feedback=feedback)
        got.append(np.mean((1.0 - b) * won))
    return float(np.mean(got[-rounds // 5 :]))


# Uniformly random bidding on GRID earns mean((1 - b) b) = 0.1663; the best bid 0.5 earns 0.25.
RANDOM_UTILITY = float(np.mean((1 - GRID) * GRID))


@pytest.mark.parametrize(
    ("make", "full"),
    [
        (partial(QLearner, grid=GRID, stateful=False, decay=2e-3), False),
        (partial(QLearner, grid=GRID, stateful=False, decay=2e-3), True),
        (partial(QLearner, grid=GRID, decay=2e-3), False),
        (partial(HedgeLearner, grid=GRID), False),
        (partial(HedgeLearner, grid=GRID), True),
        (partial(UCBLearner, grid=GRID, confidence=0.5), False),
        (partial(UCBLearner, grid=GRID, full_information=True), True),
    ],
    ids=["q", "q-sync", "q-state", "exp3", "hedge", "ucb", "ucb-full"],
)
def test_each_learner_beats_random_bidding(make, full):
    assert pytest.approx(0.16625) == RANDOM_UTILITY
    utility = play_against_uniform_rival(make(repetition_seeds(0, 50)), 5000, full)
    assert utility > RANDOM_UTILITY + 0.03
    assert utility <= 0.25 + 0.02  # cannot beat the optimum by more than noise


def test_pacing_learner_spends_its_budget_on_pace():
    # Budget 0.1 per round against a U(0, 1) second-price rival: truthful bidding would spend
    # E[rival; rival < 1] = 0.5 per round, so the pacer must shade and finish near the budget.
    reps, rounds, budget = 20, 2000, 200.0
    pacer = PacingLearner(repetition_seeds(0, reps), budget=budget, horizon=rounds)
    rng = np.random.default_rng(0)
    for t in range(rounds):
        if t == rounds // 2:
            half = pacer.spent.copy()
        b = pacer.bid(np.ones(reps))
        rival = rng.random(reps)
        won = b > rival
        pacer.update(won=won, payments=np.where(won, rival, 0.0), clicks=won * 1.0)
    assert (pacer.spent <= budget + 1e-9).all()
    assert (pacer.spent >= 0.95 * budget).all()
    # On pace at half time; the steady bid b spends b^2 / 2 = 0.1 per round: b = 0.447, mu = 1.24.
    np.testing.assert_allclose(half, budget / 2, rtol=0.1)


@pytest.mark.parametrize(
    "kwargs",
    [{"learning_rate": 0.0}, {"discount": 1.0}, {"decay": -1.0}, {"grid": []}, {"grid": [1, 1]}],
)
def test_qlearner_rejects_bad_parameters(kwargs):
    with pytest.raises(AuctionError):
        QLearner([0], **kwargs)


def test_learner_update_checks_shapes():
    q = QLearner([0, 1])
    q.bid(np.ones(2))
    with pytest.raises(AuctionError, match="one per repetition"):
        q.update(won=np.ones(3), payments=np.zeros(3), clicks=np.ones(3))


# --- the arena: seeded, batched == sequential, hand-computed metrics -------------------------


def study(**kw):
    base = {"rounds": 150, "repetitions": 4, "values": [1.0, 1.0], "blocks": 10, "seed": 9}
    return ArenaConfig(**{**base, **kw})


CASES = {
    "fp-min-bid-q": (
        [partial(QLearner, decay=1e-2)] * 2,
        {"mechanism": "first_price", "feedback": "min_bid"},
    ),
    "sp-price-hedge-uniform-values": (
        [partial(HedgeLearner), partial(QLearner, grid=GRID, decay=1e-2)],
        {"mechanism": "second_price", "feedback": "price", "values": lambda u: u},
    ),
    "gsp-min-bid-ucb": (
        [partial(UCBLearner, full_information=True), partial(HedgeLearner), StaticLearner],
        {
            "mechanism": "gsp",
            "feedback": "min_bid",
            "slot_ctrs": [0.5, 0.3],
            "values": [1.0, 0.8, 0.5],
            "rounds": 40,
        },
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_batched_equals_sequential(case):
    bidders, kw = CASES[case]
    together = run_arena(bidders, study(**kw))
    for r in range(4):
        alone = run_arena(bidders, study(**kw, repetitions=1, first_repetition=r))
        np.testing.assert_array_equal(alone.bids[:, 0], together.bids[:, r])
        np.testing.assert_array_equal(alone.winners[:, 0], together.winners[:, r])
        np.testing.assert_array_equal(alone.revenue[:, 0], together.revenue[:, r])


def test_same_seed_same_numbers_other_seed_other_numbers():
    bidders, kw = CASES["fp-min-bid-q"]
    a, b = run_arena(bidders, study(**kw)), run_arena(bidders, study(**kw))
    c = run_arena(bidders, study(**kw, seed=10))
    np.testing.assert_array_equal(a.bids, b.bids)
    assert not np.array_equal(a.bids, c.bids)


def static(*factors):
    return [partial(StaticLearner, factor=f) for f in factors]


def test_metrics_of_truthful_second_price_are_competitive():
    log = run_arena(static(1.0, 1.0), study(mechanism="second_price", values=[1.0, 0.5]))
    m = arena_metrics(log)
    np.testing.assert_allclose(m.revenue_ratio, 1.0)
    np.testing.assert_allclose(m.collusion_index, 0.0)
    np.testing.assert_allclose(m.bid_ratio, 1.0)
    np.testing.assert_allclose(m.surplus, 0.5)  # the 1.0 bidder wins and pays 0.5


@pytest.mark.parametrize(("reserve", "index"), [(0.0, 0.5), (0.2, (1 - 0.5) / (1 - 0.2))])
def test_collusion_index_by_hand(reserve, index):
    # Both bid half their common value 1 in first price: revenue 0.5 against a competitive 1
    # and a monopoly revenue equal to the reserve.
    log = run_arena(static(0.5, 0.5), study(reserve=reserve))
    m = arena_metrics(log)
    np.testing.assert_allclose(m.revenue_ratio, 0.5)
    np.testing.assert_allclose(m.collusion_index, index)
    np.testing.assert_allclose(m.surplus, 0.5)
    # Equal bids every round: random ties split the wins, the index rule gives them to bidder 0.
    assert set(np.unique(log.winners)) == {0, 1}
    assert (run_arena(static(0.5, 0.5), study(ties="index")).winners == 0).all()


def test_winning_bid_is_the_winners_bid_over_its_value_not_the_price():
    # Second price, values 1 and 0.8, bids 1 x value and 0.5 x value: bidder 0 wins with bid 1
    # and pays 0.4, so the winning bid is at value while revenue is 0.4 of the competitive 0.8.
    log = run_arena(static(1.0, 0.5), study(mechanism="second_price", values=[1.0, 0.8]))
    m = arena_metrics(log)
    np.testing.assert_allclose(m.winning_bid, 1.0)
    np.testing.assert_allclose(m.revenue_ratio, 0.5)
    # A reserve above every bid: nothing sold, nothing to average.
    unsold = arena_metrics(run_arena(static(0.5, 0.5), study(reserve=0.9)))
    assert np.isnan(unsold.winning_bid).all()


def test_gsp_benchmark_is_the_vcg_revenue_of_eos():
    # Edelman-Ostrovsky-Schwarz: values 10, 4, 2; CTRs 200, 199 (scaled). VCG = lowest
    # envy-free revenue: slot 2 pays 2 x 199; slot 1 pays 2 x 199 + 4 x (200 - 199).
    ctrs = np.array([200.0, 199.0]) / 200.0
    log = run_arena(
        static(1.0, 1.0, 1.0), study(mechanism="vcg", slot_ctrs=ctrs, values=[10.0, 4.0, 2.0])
    )
    vcg = (2 * 199 + (2 * 199 + 4 * 1)) / 200.0
    np.testing.assert_allclose(log.competitive, vcg)
    np.testing.assert_allclose(arena_metrics(log).revenue_ratio, 1.0)


def test_misreport_scales_what_the_agent_is_told():
    log = run_arena(static(1.0, 1.0), study(mechanism="second_price", misreport=[1.5, 1.0]))
    np.testing.assert_allclose(log.bids[..., 0], 1.5)
    np.testing.assert_allclose(log.bid_ratio[..., 0], 1.5)


def test_budgets_are_never_overspent():
    # First price, values 1: bidder 0 bids 1 with budget 3, bidder 1 bids 0.9 without one.
    # Bidder 0 wins three rounds (paying 3), then is capped at 0; bidder 1 wins the other 147.
    log = run_arena(static(1.0, 0.9), study(budgets=[3.0, np.inf]))
    revenue = (log.revenue * log.block_rounds[:, None]).sum(axis=0)
    np.testing.assert_allclose(revenue, 3.0 + 147 * 0.9)
    np.testing.assert_allclose(log.bids[-1, :, 0], 0.0)


class Recorder:
    """A learner that bids given amounts and keeps the feedback it gets."""

    def __init__(self, seeds, bids):
        self.bids, self.seen = np.asarray(bids, dtype=float), []

    def bid(self, values):
        return self.bids

    def update(self, *, won, payments, clicks, feedback=None):
        self.seen.append((won, payments, clicks, feedback))


@settings(max_examples=30, deadline=None)
@given(
    data=st.lists(st.sampled_from([0.0, 0.2, 0.4, 0.6, 0.8]), min_size=6, max_size=6),
    candidate=st.sampled_from([0.1, 0.3, 0.5, 0.7, 0.9]),
    mechanism=st.sampled_from(["first_price", "second_price"]),
    reserve=st.sampled_from([0.0, 0.35]),
)
@example(data=[0.2, 0.0, 0.0, 0.8, 0.4, 0.6], candidate=0.5, mechanism="second_price", reserve=0.35)
def test_counterfactual_is_what_the_engine_would_have_paid(data, candidate, mechanism, reserve):
    # Property: the revealed counterfactual of a candidate bid (never tied with a rival) equals
    # the utility the engine gives when bidder 0 actually bids it.
    rivals = np.array(data).reshape(2, 3)
    rec = Recorder(None, np.zeros(2))
    cfg = ArenaConfig(
        rounds=1,
        repetitions=2,
        values=[1.0, 1.0, 1.0, 1.0],
        mechanism=mechanism,
        feedback="min_bid",
        reserve=reserve,
    )
    makers = [lambda s: rec] + [partial(Recorder, bids=rivals[:, j]) for j in range(3)]
    run_arena(makers, cfg)
    cf = rec.seen[0][3].counterfactual(np.full((2, 1), candidate))[:, 0]
    bids = np.column_stack([np.full(2, candidate), rivals])
    out = run_auctions(bids, mechanism=mechanism, reserve=reserve, rng=0)
    won = out.winners[:, 0] == 0
    np.testing.assert_allclose(cf, won * 1.0 - out.payments[:, 0])


def test_own_feedback_reveals_nothing_and_price_only_to_who_can_infer():
    rec0, rec1 = Recorder(None, [0.7]), Recorder(None, [0.4])
    cfg = ArenaConfig(rounds=1, repetitions=1, values=[1.0, 1.0], feedback="price")
    run_arena([lambda s: rec0, lambda s: rec1], cfg)
    assert np.isnan(rec0.seen[0][3].min_bid).all()  # the first-price winner learns nothing new
    assert rec1.seen[0][3].min_bid.tolist() == [0.7]  # the loser learns the winning bid
    rec0.seen.clear()
    run_arena([lambda s: rec0, lambda s: rec1], ArenaConfig(rounds=1, repetitions=1, values=[1, 1]))
    assert rec0.seen[0][3].counterfactual is None


def test_plain_bidders_without_feedback_keyword_take_part():
    log = run_arena(static(0.9, 0.8), study(feedback="min_bid"))
    assert (log.winners == 0).all()


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"feedback": "all"}, "feedback"),
        ({"ties": "lowest"}, "ties"),
        ({"misreport": [1.0]}, "misreport"),
        ({"rounds": 0}, "rounds"),
        ({"reserve": -1.0}, "reserve"),
        ({"values": [1.0, np.nan]}, "values"),
        ({"slot_ctrs": [2.0]}, "slot_ctrs"),
        ({"window": 500}, "window"),
    ],
)
def test_arena_rejects_bad_studies(kw, match):
    with pytest.raises(AuctionError, match=match):
        run_arena(static(1.0, 1.0), study(**kw))


def test_arena_rejects_bad_bids():
    with pytest.raises(AuctionError, match="bidder 1"):
        run_arena([StaticLearner, partial(Recorder, bids=[np.nan] * 4)], study())


# --- statistics ------------------------------------------------------------------------------


def test_min_bid_feedback_raises_first_price_revenue():
    # Banchio & Skrzypacz (2022): Q-learners without feedback settle below value in first
    # price; revealing the minimum bid to win makes them compete. Small grid and fast decay
    # keep this a few seconds; the claim is that the 95% interval of the difference excludes 0.
    grid = np.round(np.linspace(0.0, 1.0, 11), 10)
    bidders = [partial(QLearner, grid=grid, decay=1.5e-3)] * 2
    revenue = {}
    for feedback in ("own", "min_bid"):
        cfg = ArenaConfig(rounds=3000, repetitions=60, values=[1.0, 1.0], feedback=feedback)
        revenue[feedback] = arena_metrics(run_arena(bidders, cfg)).revenue_ratio
    diff = revenue["min_bid"].mean() - revenue["own"].mean()
    se = np.sqrt(revenue["min_bid"].var(ddof=1) / 60 + revenue["own"].var(ddof=1) / 60)
    assert diff - 1.96 * se > 0


def test_mean_ci_by_hand():
    ci = mean_ci(np.array([1.0, 3.0, np.nan]))
    # mean 2, sd sqrt(2), half-width 1.96 x sqrt(2) / sqrt(2) = 1.96
    assert ci["mean"] == 2.0 and ci["n"] == 2
    assert ci["hi"] - ci["mean"] == pytest.approx(1.959964, rel=1e-6)


def test_converged_at_by_hand():
    curve = np.array([[0.0, 1.0], [0.98, 1.0], [1.0, 0.5], [1.0, 0.52]])
    assert converged_at(curve, np.array([5, 5, 5, 5]), 0.05).tolist() == [5, 10]


def test_screens_flag_a_rotating_ring_not_competition():
    ring = screen_bid_log([[1.0, 0.1], [0.1, 1.0]] * 20, [0, 1] * 20)
    rng = np.random.default_rng(0)
    bids = 0.9 + 0.1 * rng.random((40, 2))
    fair = screen_bid_log(bids, bids.argmax(axis=1))
    assert ring.gap > fair.gap
    assert ring.rotation_excess == pytest.approx(0.5) and fair.rotation_excess < 0.25


def test_streams_do_not_depend_on_batch_size():
    seeds = repetition_seeds(5, 3)
    together = np.stack([Streams(seeds, 2).next() for _ in range(1)])
    alone = Streams(repetition_seeds(5, 1, first=2), 2).next()
    np.testing.assert_array_equal(together[0, 2], alone[0])
