"""A language-model advertiser for the auction arena (issue 19, item 4).

:class:`LLMBidPolicy` is a ``policy(BidContext) -> bid`` for ``auction.bidders.PolicyLearner``:
it renders what the bidder knows (its per-click value, the budget left, the last rounds' own
outcomes and whatever the auctioneer revealed) into a prompt and lets the causal LM choose a
bid multiplier among a grid of options by log-likelihood (:func:`agents.generate.choose`), so
every answer parses; the bid is ``multiplier x value``. Choices are cached per prompt (the
prompt is the whole input: the same prompt gives the same bid), so repeated situations cost a
dictionary look-up. The arena and the auction package stay free of torch: the policy is built
here and passed in (:func:`llm_bidder` gives the arena's factory).

Example:
    >>> from auction.bidders import BidContext
    >>> from agents import load_model
    >>> policy = LLMBidPolicy(load_model("tiny-causal"), multipliers=(0.5, 1.0))
    >>> policy(BidContext(value=2.0, round=0, budget_left=10.0, history=())) in (1.0, 2.0)
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial

import numpy as np

from auction.bidders import BidContext, LearnerFactory, PolicyLearner, Round

from ._errors import AgentError
from .generate import choose
from .models import Backbone

# Shading from nothing to the value, the range a first-price bidder needs (bidding above the
# value never pays in these auctions), in the Q-learning papers' 0.1 steps.
MULTIPLIERS: tuple[float, ...] = tuple(np.round(np.linspace(0.0, 1.0, 11), 10))


def _round_text(r: Round) -> str:
    """One past round as the prompt tells it (money to cents, unrevealed fields left out)."""
    said = f"bid {r.bid:.2f}, {'won, paid ' + format(r.paid, '.2f') if r.won else 'lost'}"
    if math.isfinite(r.price):
        said += f", price {r.price:.2f}"
    if math.isfinite(r.min_bid):
        said += f", needed {r.min_bid:.2f}"
    return said


class LLMBidPolicy:
    """Bids ``multiplier x value`` with the multiplier the LM finds most likely.

    Args:
        backbone: a causal backbone (``load_model("tiny-causal")`` or ``"smollm2"``).
        multipliers: the options, each finite and >= 0, at least one.
        memory: past rounds recalled in the prompt, >= 0.

    Attributes:
        calls: LM decisions made (cache misses); lookups: decisions asked for.
    """

    def __init__(
        self,
        backbone: Backbone,
        *,
        multipliers: Sequence[float] = MULTIPLIERS,
        memory: int = 3,
    ) -> None:
        m = np.asarray(multipliers, dtype=np.float64)
        if m.ndim != 1 or m.size == 0 or not np.isfinite(m).all() or (m < 0).any():
            raise AgentError(f"multipliers must be >= 1 finite values >= 0, got {multipliers!r}")
        if int(memory) != memory or memory < 0:
            raise AgentError(f"memory must be an integer >= 0 (rounds), got {memory!r}")
        self.backbone, self.multipliers, self.memory = backbone, m, int(memory)
        self.options = [f"bid {x:.0%} of my value" for x in m]
        self._cache: dict[str, int] = {}
        self.calls = self.lookups = 0

    def prompt(self, ctx: BidContext) -> str:
        """What the LM reads: value, budget left, recent outcomes."""
        budget = "no budget limit" if math.isinf(ctx.budget_left) else f"{ctx.budget_left:.2f} left"
        recent = ctx.history[-self.memory :] if self.memory else ()
        past = "; ".join(_round_text(r) for r in recent) or "none yet"
        return (
            f"You are an advertiser in repeated ad auctions. A click is worth {ctx.value:.2f} "
            f"to you; budget: {budget}. Recent rounds: {past}. To maximise profit, I will"
        )

    def __call__(self, ctx: BidContext) -> float:
        """The per-click bid (>= 0) for this context."""
        text = self.prompt(ctx)
        self.lookups += 1
        if text not in self._cache:
            self._cache[text] = choose(self.backbone, text, self.options)
            self.calls += 1
        return float(self.multipliers[self._cache[text]] * ctx.value)


def llm_bidder(
    backbone: Backbone,
    *,
    multipliers: Sequence[float] = MULTIPLIERS,
    memory: int = 3,
    budget: float = math.inf,
) -> LearnerFactory:
    """An arena factory ``factory(seeds) -> PolicyLearner`` around one shared LLM policy.

    The repetitions share the policy (and its cache): its answer depends on the prompt only.
    """
    policy = LLMBidPolicy(backbone, multipliers=multipliers, memory=memory)
    return partial(PolicyLearner, policy=policy, budget=budget, memory=memory)
