"""The market's auctions are the devices' auctions.

A market step runs all its impressions as one batch (the fast path): quality is each user's
``agents.Agent`` predicted CTR of every advertiser's ad text (``LMScorer.predict``), then
``settle_in_windows`` runs ``auction.run_auctions`` over the advertisers' bids, under budgets.
Here that batch is checked row by row against the user's own device: ``choose_ad`` of
``state.lm.agents[u]`` over the same ads (ids are advertiser indices as strings, as
``LMScorer.observe`` logs them) and bids, with the same reserve and mechanism, must return the
same winner and the same per-click price, exactly. Ties are broken at random on both paths,
with the same draws for the same seed, never by index.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import pytest

import economy.market as market
from agents import Ad, Decision
from auction import run_auction, run_auctions
from economy.config import parse_config
from economy.lm_agents import LMScorer

RESERVE = 0.9
BASE = {
    "seed": 11,
    "agents": {"scorer": "lm", "model": "tiny-encoder"},
    "world": {"history": 5},
    "market": {"users": 40, "advertisers": 8, "steps": 3, "impressions_per_user": 2},
    "federated": {"every": 0},
    # values close together, so the devices' CTRs decide who wins (the tiny encoder's CTRs
    # are all ~0.4-0.5); budgets that run dry within the run, so bidders leave mid-step
    "advertisers": {"value_sigma": 0.1, "budget_per_step": 1.0},
}
MARKETS = {
    "second_price": {"auction": {"mechanism": "second_price", "reserve": RESERVE}},
    "gsp": {"auction": {"mechanism": "gsp", "slot_ctrs": [1.0], "reserve": RESERVE}},
}
# every sampled row is also run, on both paths, with each (mechanism, reserve) ...
VARIANTS = [(m, r) for m in ("second_price", "gsp", "vcg", "first_price") for r in (0.0, 0.9, 1.2)]
# ... over the market's bids and over bids drawn for the test (more winners and exclusions)
BIDS = ("market", "drawn")
ROWS_PER_STEP = 12


@dataclass(frozen=True)
class Row:
    """One sampled impression of a market step, and its device's decisions over it."""

    step: int
    user: int
    bids: dict[str, np.ndarray]  # (n,) per bid set: the market's, drawn ones
    quality: np.ndarray  # (n,) the quality row the market ran this impression with
    settled: tuple[int, float]  # the market's winner (-1: none) and per-click price
    active: np.ndarray  # (n,) bool, bidders with budget left at this impression
    device: dict[tuple[str, str, float], Decision]  # choose_ad per (bid set, *VARIANT)
    device_in_market: Decision  # choose_ad with the market's mechanism, reserve, bidders


def _ads(lm: LMScorer, bids: np.ndarray) -> list[Ad]:
    pairs = zip(lm.ads, bids, strict=True)
    return [Ad(str(a), text, float(b)) for a, (text, b) in enumerate(pairs)]


@cache
def _run_market(name: str) -> tuple[market.MarketState, tuple[Row, ...]]:
    """Advance a real market; while each step settles (before its clicks enter the users'
    contexts) record sampled impressions and ask their users' devices for their decisions."""
    cfg = parse_config({**BASE, **MARKETS[name]})
    state = market.start_market(cfg)
    assert state.lm is not None
    lm, rows, seen = state.lm, [], {}
    settle, predict = market.settle_in_windows, lm.predict

    def spy_predict(users):
        seen["users"], seen["quality"] = users.copy(), predict(users)
        return seen["quality"]

    def spy_settle(bids, budgets, **kwargs):
        out = settle(bids, budgets, **kwargs)
        # the batch's quality is the scorer's rows, untouched (no blend, no copy)
        assert kwargs["quality"] is seen["quality"]
        assert kwargs["mechanism"] == cfg.auction.mechanism
        assert kwargs["reserve"] == cfg.auction.reserve
        assert list(kwargs["slot_ctrs"]) == [1.0]
        step, a = state.step, len(bids)
        gen = np.random.default_rng(step)
        pick = set(gen.choice(a, ROWS_PER_STEP, replace=False).tolist())
        pick |= set(out.left_at[out.left_at < a].tolist())  # first rows without a leaver
        for i in sorted(pick):
            u = int(seen["users"][i])
            agent = lm.agents[u]
            sets = {"market": bids[i].copy(), "drawn": gen.uniform(0.2, 1.6, bids.shape[1])}
            device = {
                (s, m, r): agent.choose_ad(_ads(lm, sets[s]), reserve=r, mechanism=m)
                for s in BIDS
                for m, r in VARIANTS
            }
            active = out.left_at > i
            in_market = agent.choose_ad(
                _ads(lm, np.where(active, bids[i], 0.0)),
                reserve=cfg.auction.reserve,
                mechanism=cfg.auction.mechanism,
            )
            settled = (int(out.winners[i, 0]), float(out.prices[i, 0]))
            q = kwargs["quality"][i].copy()
            rows.append(Row(step, u, sets, q, settled, active, device, in_market))
        return out

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(market, "settle_in_windows", spy_settle)
        mp.setattr(lm, "predict", spy_predict)
        while not state.done:
            state.advance()
    return state, tuple(rows)


@pytest.fixture(scope="module", params=sorted(MARKETS))
def run(request):
    return _run_market(request.param)


def _tied_top(bids: np.ndarray, quality: np.ndarray, reserve: float) -> bool:
    """Whether two eligible bidders share the best score (then the winner is a draw)."""
    scores = np.where((bids >= reserve) & (bids > 0), bids * quality, -np.inf)
    best = scores.max()
    return bool(np.isfinite(best) and (scores == best).sum() > 1)


def _same(decision: Decision, winner: int, price: float) -> None:
    assert decision.winner == (None if winner < 0 else str(winner))
    assert decision.price == price  # exactly: the same auction on the same numbers


def test_the_sample_covers_steps_users_winners_and_leavers(run):
    state, rows = run
    assert {r.step for r in rows} == set(range(state.cfg.market.steps))
    assert len({r.user for r in rows}) >= 20
    assert len({r.settled[0] for r in rows} - {-1}) >= 3
    assert any(not r.active.all() for r in rows)  # some advertisers ran out of budget
    for s in BIDS:  # the market's reserve leaves some bidders out, but not all
        out = [(r.bids[s] < RESERVE).any() and (r.bids[s] >= RESERVE).any() for r in rows]
        assert sum(out) >= len(rows) // 2, s


@pytest.mark.parametrize(("mechanism", "reserve"), VARIANTS)
@pytest.mark.parametrize("bid_set", BIDS)
def test_batched_engine_equals_each_device(run, bid_set, mechanism, reserve):
    """The batch the market runs (one row per impression, the scorer's quality rows) gives
    every user the winner and per-click price its own ``choose_ad`` returns."""
    _, rows = run
    batch = run_auctions(
        np.stack([r.bids[bid_set] for r in rows]),
        quality=np.stack([r.quality for r in rows]),
        mechanism=mechanism,
        reserve=reserve,
        rng=0,
    )
    for i, r in enumerate(rows):
        decision = r.device[(bid_set, mechanism, reserve)]
        winner, price = int(batch.winners[i, 0]), float(batch.prices[i, 0])
        if _tied_top(r.bids[bid_set], r.quality, reserve):  # a draw: see the tie tests
            assert decision.price == price
            continue
        _same(decision, winner, price)
    if bid_set == "drawn":
        assert len(set(batch.winners[:, 0].tolist()) - {-1}) >= 3
        if reserve == 1.2:  # a reserve above most bids leaves some impressions empty
            assert (batch.winners[:, 0] == -1).any() and (batch.winners[:, 0] >= 0).any()


def test_the_market_settled_what_each_device_chose(run):
    """Each sampled impression's settled winner and price are its device's decision with the
    market's mechanism and reserve, among the bidders that still had budget."""
    state, rows = run
    for r in rows:
        bids = np.where(r.active, r.bids["market"], 0.0)
        if _tied_top(bids, r.quality, state.cfg.auction.reserve):
            assert r.device_in_market.price == r.settled[1]
            continue
        _same(r.device_in_market, *r.settled)


@pytest.fixture(scope="module")
def state():
    """The market after its last step: devices with history and clicks in their contexts."""
    return _run_market("second_price")[0]


TIED = (1, 5)  # advertiser 5 shows advertiser 1's ad text and bids the same
USER = 3


def _tie_case(state, top: bool):
    """Ads, bids and the scorer's quality row of a user where two bidders tie on bid x
    quality: for the slot (``top``) or just below a clear winner (they set its price)."""
    lm = state.lm
    j1, j2 = TIED
    texts = list(lm.ads)
    texts[j2] = texts[j1]
    quality = lm.predict(np.array([USER]))[0].copy()
    quality[j2] = quality[j1]  # what the scorer gives an ad with that text
    bids = np.array([0.3, 0.0, 0.95, 1.1, 0.5, 0.0, 0.8, 1.0])
    best = (bids * quality).max()
    bids[j1] = bids[j2] = 1.5 * best / quality[j1]  # the pair outscores every other bid
    if not top:
        bids[3] = 3 * best / quality[3]
    assert (bids[bids > 0] < RESERVE).any()  # the reserve leaves some bidders out
    ads = [Ad(str(a), t, float(b)) for a, (t, b) in enumerate(zip(texts, bids, strict=True))]
    return lm.agents[USER], ads, bids, quality


@pytest.mark.parametrize("mechanism", ["second_price", "gsp"])
def test_a_tie_is_a_fair_draw_on_both_paths(state, mechanism):
    agent, ads, bids, quality = _tie_case(state, top=True)
    j1, j2 = TIED
    draws = 400
    wins = {"batched": np.zeros(len(bids), int), "device": np.zeros(len(bids), int)}
    prices = set()
    for seed in range(draws):
        one = run_auction(bids, quality=quality, mechanism=mechanism, reserve=RESERVE, rng=seed)
        mine = agent.choose_ad(ads, reserve=RESERVE, mechanism=mechanism, rng=seed)
        # the same seed draws the same keys: the same tied bidder wins, at the same price
        _same(mine, int(one.winners[0]), float(one.prices[0]))
        wins["batched"][int(one.winners[0])] += 1
        wins["device"][int(mine.winner)] += 1
        prices.add(mine.price)
    # the market's batch draws the keys of all its tied rows from one stream
    batch = run_auctions(
        np.tile(bids, (draws, 1)),
        quality=np.tile(quality, (draws, 1)),
        mechanism=mechanism,
        reserve=RESERVE,
        rng=np.random.default_rng(7),
    )
    wins["batch"] = np.bincount(batch.winners[:, 0], minlength=len(bids))
    for path, count in wins.items():
        assert count[j1] + count[j2] == draws, (path, count)
        assert 0.35 * draws <= count[j1] <= 0.65 * draws, (path, count)  # not by index
    # whichever of the pair wins pays the other's score over its own quality: the same
    assert prices == set(batch.prices[:, 0].tolist()) == {bids[j2] * quality[j2] / quality[j1]}


def test_a_tie_below_the_winner_sets_the_same_price(state):
    agent, ads, bids, quality = _tie_case(state, top=False)
    j1, _ = TIED
    for mechanism in ("second_price", "gsp", "vcg"):
        one = run_auction(bids, quality=quality, mechanism=mechanism, reserve=RESERVE, rng=0)
        mine = agent.choose_ad(ads, reserve=RESERVE, mechanism=mechanism, rng=1)
        _same(mine, 3, float(one.prices[0]))
        assert mine.price == bids[j1] * quality[j1] / quality[3]


def test_the_quality_floor_is_the_same_on_both_paths(state):
    """A head that pushes some CTRs far below the 1e-12 floor: the scorer's quality row and
    the device's own auction floor them alike (to 1e-12, in float64)."""
    scorer = LMScorer(state.world, state.cfg.agents)
    agent = scorer.agents[USER]
    p = agent.predict_ctr(scorer.ads)
    head = agent.state()
    cos = (np.log(p) - np.log1p(-p) - head["head.bias"][0]) / head["head.scale"][0]
    scale = 40.0 / (cos.max() - cos.min())  # logits now span about [-50, -10]
    head["head.scale"][0], head["head.bias"][0] = scale, -50.0 - scale * cos.min()
    agent.load_state(head)
    quality = scorer.predict(np.array([USER]))[0]
    floored = quality == 1e-12
    assert floored.any() and not floored.all()
    # the best ad wins and a floored ad sets its price; then random bids
    cases = [np.where(floored | (quality == quality.max()), 1.0, 0.0)]
    gen = np.random.default_rng(0)
    cases += [gen.uniform(0.1, 2.0, len(quality)) for _ in range(20)]
    for bids in cases:
        for mechanism in ("second_price", "gsp"):
            batch = run_auctions(bids[None], quality=quality[None], mechanism=mechanism)
            mine = agent.choose_ad(_ads(scorer, bids), mechanism=mechanism)
            _same(mine, int(batch.winners[0, 0]), float(batch.prices[0, 0]))
