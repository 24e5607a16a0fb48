"""The market loop: impressions -> on-device auctions -> clicks -> payments -> learning.

One step: every user sees ``impressions_per_user`` impressions. For each, the user's device
scores every advertiser's ad with its private CTR estimate (the auction's quality), runs the
exchange's mechanism locally with the advertisers' current bids, and shows the winners; the
simulator draws clicks from the hidden ground truth; advertisers pay per click, never beyond
their budget; devices update their estimates and advertisers their bids. All impressions of a
step run as one batch (the fast path), in a random order drawn from the run's seed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from agents.accountant import UserAccountant, laplace, unbounded
from agents.metrics import ndcg_at_k
from auction import BatchOutcome
from auction.bidders import BaseBidder, make_bidder
from graphs import Topology, gossip_average
from incentives import Ledger, gini

from .config import ExperimentConfig
from .ctr_estimator import CategoryCTR
from .progress import phase
from .seeding import RunSeeds
from .settlement import Settled, settle_in_windows
from .world import World, make_world

if TYPE_CHECKING:  # the language-model scorer imports torch: only runs that use it load it
    from .federated import FederatedAgents, FlowerLink
    from .lm_agents import LMScorer


@dataclass(frozen=True)
class StepMetrics:
    """Metrics of one market step (definitions in docs/economy.md)."""

    step: int
    impressions: int
    filled_slots: int
    clicks: int
    ctr: float
    revenue: float
    advertiser_surplus: float
    social_welfare: float
    user_welfare: float
    budget_spent_share: float
    gossip_bytes: int
    epsilon_per_agent: float  # the largest user epsilon so far, every mechanism composed
    fed_clients: int
    fed_tokens: float
    token_gini: float
    fast_path_us_per_impression: float
    ndcg10: float = 0.0
    epsilon_median: float = 0.0  # the median user epsilon so far
    fed_seconds: float = 0.0  # wall time of the step's federated round (0: none)
    fed_adopted: int = 0  # 1: the agents took the round's aggregate (federated.adopt)
    active_advertisers: int = 0  # advertisers with a bid > 0 in at least one of the auctions
    remaining_budget_share: float = 0.0  # money left over all budgets / their total, after it
    mean_bid_over_value: float = 0.0  # mean per-click bid / value over the bids > 0 placed


def _shown_ctr(
    outcome: BatchOutcome | Settled, true_ctr: np.ndarray, users: np.ndarray
) -> np.ndarray:
    """(I, K) true click probability of the ad in each slot times the slot's CTR (0 where the
    slot is empty): ``true_ctr`` is the run's (users, advertisers) table, ``users`` (I,) who
    saw each auction."""
    filled = outcome.winners >= 0
    shown = np.where(filled, outcome.winners, 0)
    return true_ctr[users[:, None], shown] * outcome.slot_ctrs


def _clicks(outcome: BatchOutcome | Settled, click_u: np.ndarray, p: np.ndarray) -> np.ndarray:
    """(I, K) bool clicks at probability ``p`` (:func:`_shown_ctr`); uniforms are drawn per
    (impression, slot) once, before the auction, so every settlement pass of the budgeted batch
    sees the same clicks."""
    return (outcome.winners >= 0) & (click_u < p)


def _feedback(
    bidders: list[BaseBidder], outcome: Settled, clicks: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Tell each advertiser what it won, paid and got in each auction of the step.

    Built one advertiser at a time from the filled slots (a dense (I, n) array per quantity
    would be the step's largest allocation). Returns (n,) money spent and (n,) clicks.
    """
    n_imp = outcome.winners.shape[0]
    rows, slots = np.nonzero(outcome.winners >= 0)
    who = outcome.winners[rows, slots]
    order = np.argsort(who, kind="stable")
    bounds = np.searchsorted(who[order], np.arange(len(bidders) + 1))
    got = clicks[rows, slots].astype(float)
    bill = outcome.prices[rows, slots] * got
    spent, clicked = np.zeros(len(bidders)), np.zeros(len(bidders))
    for a, bidder in enumerate(bidders):
        mine = order[bounds[a] : bounds[a + 1]]
        won, paid, hits = np.zeros(n_imp, bool), np.zeros(n_imp), np.zeros(n_imp)
        won[rows[mine]], paid[rows[mine]], hits[rows[mine]] = True, bill[mine], got[mine]
        bidder.update(won=won, payments=paid, clicks=hits)
        spent[a], clicked[a] = bill[mine].sum(), got[mine].sum()
    return spent, clicked


def share_trends(
    step: int,
    world: World,
    cfg: ExperimentConfig,
    estimator: CategoryCTR,
    rng: np.random.Generator,
    privacy: UserAccountant,
    *,
    topology: Topology | None = None,
) -> int:
    """Every ``trend_every`` steps, devices share interest summaries with friends by gossip;
    the result becomes their prior. Returns the bytes sent. ``topology``: ``world.graph`` as
    gossip needs it, built once per run (:attr:`StepCache.topology`); without it gossip
    reads the graph (whose topology ``graphs`` keeps until the graph changes).

    Each user releases its summary (a row of per-category shares, >= 0, summing to <= 1, so
    one user's data moves it by at most 2 in L1) once per share, with Laplace noise of scale
    ``2 / trend_epsilon`` (``trend_epsilon``-local DP), charged to its accountant; the gossip
    rounds then average released values only (post-processing: free). A user whose budget
    cannot pay sends the uniform summary (no data). Without ``trend_private`` the raw summary
    leaves the device: its epsilon is ``inf``.
    """
    soc = cfg.social
    if soc.gossip_rounds == 0 or soc.trend_weight == 0 or step % soc.trend_every:
        return 0
    summary = estimator.interest_summary()
    n, c = summary.shape
    if soc.trend_private:
        mechanism = laplace(soc.trend_epsilon, "trend share (Laplace)")
    else:
        mechanism = unbounded("trend share (raw)")
    sharing = privacy.charge(np.arange(n), mechanism)
    released = np.where(sharing[:, None], summary, 1.0 / c)
    if soc.trend_private:
        released += sharing[:, None] * rng.laplace(0.0, 2.0 / soc.trend_epsilon, (n, c))
    graph = world.graph if topology is None else topology
    trace = gossip_average(graph, released, soc.gossip_rounds, rng=rng, record="last")
    trend = np.clip(trace.final, 0.0, None)
    total = trend.sum(axis=1, keepdims=True)
    trend = np.where(total > 0, trend / np.where(total > 0, total, 1.0), 1.0 / c)
    prior = (1 - soc.trend_weight) * world.base_ctr + soc.trend_weight * world.base_ctr * c * trend
    estimator.set_prior(prior)
    return int(trace.bytes.sum())


def market_step(
    step: int,
    world: World,
    cfg: ExperimentConfig,
    bidders: list[BaseBidder],
    estimator: CategoryCTR,
    rng: np.random.Generator,
    gossip_rng: np.random.Generator,
    privacy: UserAccountant,
    fed: FederatedAgents | None = None,
    lm: LMScorer | None = None,
    link: FlowerLink | None = None,
    cache: StepCache | None = None,
) -> StepMetrics:
    """Run one step of the market and let devices and advertisers learn from it.

    ``lm``: the language-model agents that score ads on the devices (``agents.scorer =
    "lm"``); without it the devices' click counts per category do. ``fed`` trains them in a
    federated round every ``federated.every`` steps over the Flower federation ``link``.
    ``cache``: what the steps derive from ``world`` and the arrays they fill in place (built
    here when not given; a run keeps one, :attr:`MarketState.cache`).
    """
    cache = cache if cache is not None else StepCache(world)
    users = rng.permutation(np.repeat(np.arange(world.n_users), cfg.market.impressions_per_user))
    n_imp, k = users.size, len(cfg.auction.slot_ctrs)
    click_u = rng.random((n_imp, k))

    def charge(out: BatchOutcome, rows: slice) -> np.ndarray:
        p = _shown_ctr(out, cache.true_ctr, users[rows])
        return out.prices * _clicks(out, click_u[rows], p)

    start = time.perf_counter()
    bids, bid_rows = _bids(bidders, world.values, cache, n_imp)
    # the category scorer fills a reused F-ordered buffer, one advertiser's column at a time
    by_ad = None if lm is not None else cache.buffer("quality", bids.shape[::-1]).T
    quality = _quality(world, estimator, lm, users, out=by_ad)
    outcome = settle_in_windows(
        bids,
        np.array([b.allowance for b in bidders]),
        charge=charge,
        mechanism=cfg.auction.mechanism,
        slot_ctrs=cfg.auction.slot_ctrs,
        reserve=cfg.auction.reserve,
        quality=quality,
        rng=rng,
    )
    fast_path = time.perf_counter() - start

    relevance = _shown_ctr(outcome, cache.true_ctr, users)  # expected clicks per slot
    clicks = _clicks(outcome, click_u, relevance)
    filled = outcome.winners >= 0
    shown = np.where(filled, outcome.winners, 0)
    rows, slots = np.nonzero(filled)
    estimator.observe(users[rows], world.ad_category[shown[rows, slots]], clicks[rows, slots])
    if lm is not None:
        lm.observe(step, users[rows], shown[rows, slots], clicks[rows, slots])
    spent, clicked = _feedback(bidders, outcome, clicks)
    active, bid_over_value = _bidding(bids, bid_rows, world.values)

    gossip_bytes = share_trends(
        step, world, cfg, estimator, gossip_rng, privacy, topology=cache.topology
    )
    every = cfg.federated.every
    fed_round = {"fed_clients": 0.0, "fed_tokens": 0.0}
    if fed is not None:
        fed.pending_revenue += float(spent.sum())
        if every and (step + 1) % every == 0:
            if link is None:
                raise RuntimeError(
                    "federated rounds run over a Flower federation: start the market with "
                    "economy.runner.run_market (fedadagent run), or set federated.every = 0"
                )
            started = time.perf_counter()
            fed_round = fed.round(link, step)
            fed_round["fed_seconds"] = time.perf_counter() - started
    epsilons = privacy.epsilons()
    value_of_clicks = world.values * clicked
    n_filled = int(filled.sum())
    return StepMetrics(
        step=step,
        impressions=n_imp,
        filled_slots=n_filled,
        clicks=int(clicks.sum()),
        ctr=float(clicks.sum() / n_filled) if n_filled else 0.0,
        revenue=float(spent.sum()),
        advertiser_surplus=float((value_of_clicks - spent).sum()),
        social_welfare=float(value_of_clicks.sum()),
        user_welfare=float(relevance[filled].sum()),
        budget_spent_share=float(spent.sum() / (world.budgets.sum())),
        gossip_bytes=gossip_bytes,
        epsilon_per_agent=float(epsilons.max()),
        fed_clients=int(fed_round["fed_clients"]),
        fed_tokens=fed_round["fed_tokens"],
        token_gini=gini(fed.tokens[fed.tokens > 0]) if fed is not None else 0.0,
        fast_path_us_per_impression=fast_path / n_imp * 1e6,
        ndcg10=ndcg_at_k(_quality(world, estimator, lm), cache.true_ctr),
        epsilon_median=float(np.median(epsilons)),
        fed_seconds=float(fed_round.get("fed_seconds", 0.0)),
        fed_adopted=int(fed_round.get("fed_adopted", 0)),
        active_advertisers=active,
        remaining_budget_share=float(
            sum(b.budget.remaining for b in bidders) / sum(b.budget.total for b in bidders)
        ),
        mean_bid_over_value=bid_over_value,
    )


def _bidding(bids: np.ndarray, by_bidder: np.ndarray, values: np.ndarray) -> tuple[int, float]:
    """Advertisers with a bid > 0 in some auction of the (I, n) ``bids``, and the mean of
    bid / value (``values``: (n,) per click) over the bids > 0 (0 when there are none).
    ``by_bidder``: the same bids as (n, I) rows (counted there: contiguous; bids are >= 0, so
    a bid > 0 is a bid != 0)."""
    placed = np.count_nonzero(by_bidder, axis=1)
    ratio_sum = float((bids.sum(axis=0) / values).sum())  # the zero bids add nothing
    return int((placed > 0).sum()), ratio_sum / placed.sum() if placed.any() else 0.0


def _bids(
    bidders: list[BaseBidder], values: np.ndarray, cache: StepCache, n_imp: int
) -> tuple[np.ndarray, np.ndarray]:
    """Every advertiser's per-click bid in each of the step's ``n_imp`` auctions (``values``:
    (n,) per click), as (I, n) auctions x bidders and as (n, I) rows, both buffers of
    ``cache``. Each bidder's bids are written as a contiguous row, then all are transposed at
    once (column writes into (I, n) would stride through memory)."""
    rows = cache.buffer("bid rows", (len(bidders), n_imp))
    for a, (bidder, value) in enumerate(zip(bidders, values, strict=True)):
        rows[a] = bidder.bid(np.full(n_imp, value))
    out = cache.buffer("bids", (n_imp, len(bidders)))
    np.copyto(out, rows.T)
    return out, rows


def _quality(
    world: World,
    estimator: CategoryCTR,
    lm: LMScorer | None,
    users: np.ndarray | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """(len(users), advertisers) the devices' predicted CTR of every ad (the auction's
    quality): the LM agents' if they score, else the click counts per category; every user's
    (in user order) when ``users`` is None. The category scorer's are written into ``out``
    when it is given: an F-ordered (len(users), advertisers) array (a C-ordered one's
    transpose), so that each advertiser's column is contiguous."""
    if lm is not None:
        return lm.predict(np.arange(world.n_users) if users is None else users)
    by_ad = estimator.predict_all()[:, world.ad_category]  # (users, advertisers)
    if users is None:
        return by_ad
    # one contiguous (I,) gather per advertiser into ``out``'s rows: ~4x faster than gathering
    # (I, n) at once; the auctions read the transpose (a view)
    columns = np.ascontiguousarray(by_ad.T)
    rows = out.T if out is not None else np.empty((columns.shape[0], users.size))
    for a, column in enumerate(columns):
        column.take(users, out=rows[a], mode="clip")  # users are valid rows: clip is a no-op
    return rows.T


class StepCache:
    """What the steps of one run keep between them: tables derived from the run's fixed world,
    and the large arrays each step fills in place.

    A fresh (impressions x advertisers) array per step (40 MB at 10,000 users x 100
    advertisers) pays its page faults every step, and numpy asks for huge pages for it, whose
    faults may compact memory first: a reused one pays once. The cache is derived state, never
    checkpointed (a resumed run builds it again).

    Attributes:
        true_ctr: (users, advertisers) ``world.true_ctr`` of every user, in user order.
    """

    def __init__(self, world: World) -> None:
        self._world = world
        self.true_ctr = world.true_ctr(np.arange(world.n_users))
        self.true_ctr.flags.writeable = False
        self._buffers: dict[str, np.ndarray] = {}

    @cached_property
    def topology(self) -> Topology:
        """The social graph as gossip needs it (node order, edges, mixing matrix)."""
        return Topology(self._world.graph)

    def buffer(self, name: str, shape: tuple[int, int]) -> np.ndarray:
        """A float64 array of ``shape`` to fill in place, the same one every step (contents
        undefined; valid until the next step asks for ``name``)."""
        kept = self._buffers.get(name)
        if kept is None or kept.shape != shape:
            kept = self._buffers[name] = np.empty(shape)
        return kept


@dataclass
class MarketState:
    """Everything a run carries from one step to the next: what a checkpoint saves.

    ``world`` is fixed for the run (a checkpoint rebuilds it from the config and seed); the
    rest changes every step. ``metrics`` has one entry per finished step.
    """

    cfg: ExperimentConfig
    world: World
    bidders: list[BaseBidder]
    estimator: CategoryCTR
    rng: np.random.Generator
    gossip_rng: np.random.Generator
    fed: FederatedAgents | None
    metrics: list[StepMetrics]
    privacy: UserAccountant  # one accountant per user, shared with ``fed``
    lm: LMScorer | None = None

    @property
    def step(self) -> int:
        """Steps finished so far."""
        return len(self.metrics)

    @property
    def done(self) -> bool:
        """Whether every step of ``market.steps`` has run."""
        return self.step >= self.cfg.market.steps

    @cached_property
    def cache(self) -> StepCache:
        """What the steps derive from the world and the arrays they reuse, built at the first
        step (not a field: a checkpoint does not hold it)."""
        return StepCache(self.world)

    def advance(self, link: FlowerLink | None = None) -> StepMetrics:
        """Run the next step (its federated round over ``link``) and record its metrics."""
        args = (self.bidders, self.estimator, self.rng, self.gossip_rng, self.privacy, self.fed)
        metrics = market_step(
            self.step, self.world, self.cfg, *args, lm=self.lm, link=link, cache=self.cache
        )
        self.metrics.append(metrics)
        return metrics

    def close(self) -> None:
        """Close the ledger (if the run has federated rounds)."""
        if self.fed is not None:
            self.fed.ledger.close()


def start_market(cfg: ExperimentConfig, ledger_path: str | Path = ":memory:") -> MarketState:
    """The market before its first step; token rewards go to the ledger at ``ledger_path``."""
    seeds = RunSeeds(cfg.seed)
    world = make_world(cfg, seeds)
    m = cfg.market
    auctions = m.steps * m.users * m.impressions_per_user
    bidders = [
        make_bidder(
            str(world.strategies[a]),
            budget=float(world.budgets[a]) * m.steps,
            shading=cfg.advertisers.shading,
            horizon=auctions,
            burst=cfg.advertisers.max_step_spend,
            rng=seeds.generator("bidder", a),
        )
        for a in range(world.n_advertisers)
    ]
    estimator = CategoryCTR(world.n_users, cfg.market.categories, prior_ctr=cfg.market.base_ctr)
    rng, gossip_rng = seeds.generator("market"), seeds.generator("gossip")
    p = cfg.privacy
    privacy = UserAccountant(world.n_users, delta=p.delta, budget=p.epsilon_budget)
    lm = fed = None
    if cfg.agents.scorer in ("lm", "student"):
        from .lm_agents import LMScorer

        lm = LMScorer(
            world,
            cfg.agents,
            rng=seeds.generator("student"),
            privacy=privacy,
            clipping_norm=cfg.federated.clipping_norm,
            noise_multiplier=cfg.federated.noise_multiplier,
        )
    if cfg.federated.every and lm is not None:
        from .federated import FederatedAgents

        ledger = Ledger(ledger_path)
        fed = FederatedAgents(cfg, lm, ledger, seeds.generator("federated"), privacy)
    return MarketState(cfg, world, bidders, estimator, rng, gossip_rng, fed, [], privacy, lm)


def run_steps(
    state: MarketState,
    on_step: Callable[[MarketState], None] | None = None,
    link: FlowerLink | None = None,
) -> list[StepMetrics]:
    """Advance ``state`` to the last step, calling ``on_step(state)`` after each one; the
    federated rounds run over ``link``.

    The caller closes the state (its ledger) when it is done with it.
    """
    while not state.done:
        if link is not None and link.stop is not None and link.stop.is_set():
            raise KeyboardInterrupt("the run was stopped")  # Ctrl-C reached the engine
        phase("step %d of %d: auctions and feedback", state.step + 1, state.cfg.market.steps)
        state.advance(link)
        if on_step is not None:
            on_step(state)
    return state.metrics


def simulate(
    cfg: ExperimentConfig,
    ledger_path: str | Path = ":memory:",
    *,
    on_step: Callable[[MarketState], None] | None = None,
) -> list[StepMetrics]:
    """Run the whole market without federated rounds (``federated.every = 0``: no Flower
    federation is started; see :func:`economy.runner.run_market` for the whole system); the
    same config and seed give the same metrics. ``on_step`` is called with the state after
    every step.
    """
    state = start_market(cfg, ledger_path)
    try:
        return run_steps(state, on_step)
    finally:
        state.close()


def summarize(
    cfg: ExperimentConfig,
    metrics: list[StepMetrics],
    fed: FederatedAgents | None = None,
    privacy: UserAccountant | None = None,
) -> dict:
    """Totals and means over the run, the federation's tokens and ledger, privacy and quality;
    timing is kept apart so the rest is reproducible.

    ``privacy`` is the run's per-user accountant (``agents.UserAccountant.summary``):
    ``epsilon_max``, ``epsilon_median``, ``epsilon_rdp_max`` (RDP cross-check), ``delta``,
    ``budget``, ``uses`` (releases per mechanism) and ``refused`` (releases a budget stopped),
    every mechanism composed over the whole run with PLD; ``inf`` when anything left a device
    without noise. Without the accountant, the last step's largest and median epsilon.
    """
    if privacy is not None:
        privacy_summary = privacy.summary()
    else:
        last = metrics[-1]
        privacy_summary = {
            "epsilon_max": last.epsilon_per_agent,
            "epsilon_median": last.epsilon_median,
            "delta": cfg.privacy.delta,
        }
    totals = {
        key: float(sum(getattr(m, key) for m in metrics))
        for key in ("impressions", "clicks", "revenue", "advertiser_surplus", "social_welfare")
    }
    totals["user_welfare"] = float(sum(m.user_welfare for m in metrics))
    totals["gossip_bytes"] = float(sum(m.gossip_bytes for m in metrics))
    totals["fed_tokens"] = float(sum(m.fed_tokens for m in metrics))
    slots = sum(m.filled_slots for m in metrics)
    fed_summary = (
        fed.summary()
        if fed is not None
        else {
            "tokens": {
                "paid": 0.0,
                "contributors": 0,
                "participants": 0,
                "participation": 0.0,
                "gini_contributors": 0.0,
                "pay_per_value": 0.0,
                "zero_pay_rounds": 0,
                "pool": cfg.federated.reward_pool,
            },
            "ledger": {"head": None, "entries": 0, "verified": None},
        }
    )
    return {
        "name": cfg.name,
        "seed": cfg.seed,
        "steps": len(metrics),
        "totals": totals,
        "ctr": totals["clicks"] / slots if slots else 0.0,
        "ctr_first_step": metrics[0].ctr,
        "ctr_last_step": metrics[-1].ctr,
        "epsilon_per_agent": metrics[-1].epsilon_per_agent,
        "token_gini": metrics[-1].token_gini,
        "federated_rounds": sum(1 for m in metrics if m.fed_clients),
        "agents": {"scorer": cfg.agents.scorer, "model": cfg.agents.model},
        "federated": {
            "engine": cfg.federated.engine if fed is not None else "none",
            "rounds": sum(1 for m in metrics if m.fed_clients),
            "adopted": sum(m.fed_adopted for m in metrics),
            "strategy": cfg.federated.strategy,
            "round_records": fed_summary.pop("round_records", []),
        },
        "privacy": {**privacy_summary, "unit": "user"},
        "quality": {"ndcg10": metrics[-1].ndcg10, "ndcg10_first_step": metrics[0].ndcg10},
        **fed_summary,
    }
