"""Run alternating-offers negotiations between a user agent and a brand agent, and score them.

:func:`run_negotiation` plays one :class:`~agents.negotiation_protocol.Scenario`: each side
moves from its own view (its private party and the public log), its move is checked by its
own party (individual rationality, the brand's budget: a violating move is refused with an
:class:`~agents.AgentError`), its words pass its filter, and the :class:`Dialogue` checks
turn, range and deadline. :func:`negotiate_many` runs many seeded scenarios and reports the
agreement rate, the user's share of the surplus, rounds to agreement and the distance to the
Nash (equal power) and Rubinstein (SPE, first-mover) predictions.

Example:
    >>> from agents.negotiators import RuleNegotiator
    >>> s = Scenario(list_price=100.0, user_max=80.0, brand_floor=50.0, budget=40.0)
    >>> r = run_negotiation(s, RuleNegotiator(1.0), RuleNegotiator(1.0), seed=0)
    >>> r.agreed, r.price, r.rounds  # brand 100, 92.01, 84.01, 76.01, 68.01; user accepts
    (True, 68.01, 9)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ._errors import AgentError
from .negotiation_protocol import (
    SIDES,
    Dialogue,
    Message,
    Negotiator,
    Party,
    Scenario,
    Side,
    View,
    rubinstein_share,
)


@dataclass(frozen=True)
class NegotiationResult:
    """One negotiation. Shares are of the zone of agreement of the agreed terms.

    Attributes:
        scenario: the problem; messages: the public log.
        agreed: whether a deal was struck; price, bundle: its terms (NaN / False if none).
        rounds: offers made until the accepted one was accepted (0 without a deal).
        user_share: ``(user_max - price) / (user_max - brand_min)`` (NaN without a deal).
        rubinstein: the user's SPE share (first mover ``(1 - d2) / (1 - d1 d2)``).
        utilities: discounted surplus ``(user, brand)`` at the round of the accepted offer.
    """

    scenario: Scenario
    messages: tuple[Message, ...]
    agreed: bool
    price: float
    bundle: bool
    rounds: int
    user_share: float
    rubinstein: float
    utilities: tuple[float, float]


def _other(side: Side) -> Side:
    return SIDES[1 - SIDES.index(side)]


def user_rubinstein_share(s: Scenario) -> float:
    """The user's Rubinstein SPE share of the surplus in scenario ``s`` (NaN when neither
    side discounts: the share is then undetermined)."""
    if s.d_user * s.d_brand >= 1.0:
        return math.nan
    first = rubinstein_share(s.terms.discount(s.first), s.terms.discount(_other(s.first)))
    return first if s.first == "user" else 1.0 - first


def run_negotiation(
    scenario: Scenario,
    user: Negotiator,
    brand: Negotiator,
    *,
    seed: int = 0,
    user_texts: Sequence[str] = (),
) -> NegotiationResult:
    """Play one negotiation to agreement or deadline.

    Args:
        scenario: the problem; user, brand: the negotiators; seed: passed in each view
            (round-dependent, for wording); user_texts: the user's private context texts
            (its prompt may read them; its filter keeps them out of its words).

    Raises:
        AgentError: a move that breaks individual rationality, the budget or the protocol.
    """
    parties = {"user": scenario.party("user", user_texts), "brand": scenario.party("brand")}
    agents = {"user": user, "brand": brand}
    filters = {side: p.words_filter() for side, p in parties.items()}
    dialogue = Dialogue(scenario.terms)
    while (side := dialogue.turn) is not None:
        party = parties[side]
        move = agents[side].move(View(party, tuple(dialogue.messages), seed + dialogue.round))
        last = dialogue.last_offer
        if move.leave:
            break
        if move.accept:
            if last is None:
                raise AgentError("accept refused: there is no offer on the table yet")
            party.check_accept(last)
            words = filters[side].clean(move.words, price=last.price)
            dialogue.post(Message(side, dialogue.round, last.price, last.bundle, words, True))
        elif dialogue.round >= scenario.deadline:
            break  # the last offer was declined
        else:
            price = party.check_offer(round(move.price, 2), move.bundle)
            words = filters[side].clean(move.words, price=price)
            dialogue.post(Message(side, dialogue.round, price, move.bundle, words))
    return _result(scenario, dialogue, parties)


def _result(scenario: Scenario, dialogue: Dialogue, parties: dict[str, Party]) -> NegotiationResult:
    deal, rub = dialogue.agreement, user_rubinstein_share(scenario)
    log = tuple(dialogue.messages)
    if deal is None:
        return NegotiationResult(scenario, log, False, math.nan, False, 0, math.nan, rub, (0, 0))
    lo, hi = scenario.zone(deal.bundle)
    share = (hi - deal.price) / (hi - lo) if hi > lo else 0.5
    t = deal.round - 1  # the accepted offer's round
    util = tuple(
        parties[s].surplus(deal.price, deal.bundle) * scenario.terms.discount(s) ** t for s in SIDES
    )
    return NegotiationResult(
        scenario, log, True, deal.price, deal.bundle, deal.round, share, rub, util
    )


@dataclass(frozen=True)
class ScenarioSpace:
    """Where :func:`negotiate_many` draws its scenarios (uniform ranges, money units).

    Attributes:
        list_price: fixed list price; user_max, brand_floor, budget: (low, high) ranges;
        deadline, d_user, d_brand: fixed; the first mover is drawn with equal odds.
    """

    list_price: float = 100.0
    user_max: tuple[float, float] = (50.0, 100.0)
    brand_floor: tuple[float, float] = (30.0, 80.0)
    budget: tuple[float, float] = (20.0, 60.0)
    deadline: int = 10
    d_user: float = 0.95
    d_brand: float = 0.95

    def draw(self, rng: np.random.Generator) -> Scenario:
        """One scenario from ``rng``."""
        u, f, b = (float(rng.uniform(*r)) for r in (self.user_max, self.brand_floor, self.budget))
        first: Side = SIDES[int(rng.integers(2))]
        return Scenario(
            self.list_price, u, f, b, deadline=self.deadline, d_user=self.d_user,
            d_brand=self.d_brand, first=first,
        )  # fmt: skip


@dataclass(frozen=True)
class NegotiationSummary:
    """Over many negotiations (means over agreements where stated; NaN if none).

    Attributes:
        n: negotiations; feasible: those with a non-empty zone; agreement_rate: agreements /
        feasible; user_share: mean user share; rounds: mean rounds to agreement;
        nash_gap: mean |user share - 1/2|; rubinstein_gap: mean |user share - SPE share|
        (where determined); results: every negotiation.
    """

    n: int
    feasible: int
    agreement_rate: float
    user_share: float
    rounds: float
    nash_gap: float
    rubinstein_gap: float
    results: tuple[NegotiationResult, ...]

    def row(self) -> dict[str, float]:
        """The summary as a table row (no per-negotiation results)."""
        keys = ("n", "feasible", "agreement_rate", "user_share", "rounds")
        return {k: getattr(self, k) for k in (*keys, "nash_gap", "rubinstein_gap")}


def negotiate_many(
    pairs: Sequence[tuple[Negotiator, Negotiator]],
    seed: int,
    *,
    space: ScenarioSpace | None = None,
    contexts: Sequence[Sequence[str]] | None = None,
) -> NegotiationSummary:
    """One seeded scenario per ``(user, brand)`` pair; their summary.

    Scenario ``i`` is drawn from ``SeedSequence(seed).spawn(len(pairs))[i]`` so a pair's
    problem does not depend on the others; ``contexts[i]`` (optional) are user ``i``'s private
    context texts (``run_negotiation``'s ``user_texts``).

    Example:
        >>> from agents.negotiators import RuleNegotiator
        >>> s = negotiate_many([(RuleNegotiator(1.0), RuleNegotiator(1.0))] * 20, seed=0)
        >>> s.n, s.feasible, round(s.agreement_rate, 3)
        (20, 15, 0.933)
    """
    if len(pairs) == 0:
        raise AgentError("pairs must hold at least one (user, brand) negotiator pair")
    if contexts is not None and len(contexts) != len(pairs):
        raise AgentError(
            f"contexts must hold one entry per pair ({len(pairs)}), got {len(contexts)}"
        )
    space = space or ScenarioSpace()
    seqs = np.random.SeedSequence(seed).spawn(len(pairs))
    results = []
    for i, (user, brand) in enumerate(pairs):
        scenario = space.draw(np.random.default_rng(seqs[i]))
        texts = () if contexts is None else contexts[i]
        wording = int(seqs[i].generate_state(1)[0])
        results.append(run_negotiation(scenario, user, brand, seed=wording, user_texts=texts))
    return summarize(results)


def summarize(results: Sequence[NegotiationResult]) -> NegotiationSummary:
    """Agreement rate among feasible problems, and means over the agreements."""
    feasible = [r for r in results if r.scenario.zone()[0] <= r.scenario.zone()[1]]
    deals = [r for r in results if r.agreed]
    share = np.array([r.user_share for r in deals])
    rub = np.array([r.rubinstein for r in deals])

    def mean(x: np.ndarray) -> float:
        x = x[np.isfinite(x)]
        return float(x.mean()) if x.size else math.nan

    return NegotiationSummary(
        n=len(results),
        feasible=len(feasible),
        agreement_rate=len(deals) / len(feasible) if feasible else math.nan,
        user_share=mean(share),
        rounds=mean(np.array([r.rounds for r in deals], dtype=float)),
        nash_gap=mean(np.abs(share - 0.5)),
        rubinstein_gap=mean(np.abs(share - rub)),
        results=tuple(results),
    )
