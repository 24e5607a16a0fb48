"""Negotiators for :mod:`agents.negotiation_protocol`: time-dependent rule agents and an LLM.

- :class:`RuleNegotiator`: Faratin, Sierra & Jennings (1998) time-dependent tactics. At round
  ``t`` of ``T`` (the deadline) a side concedes the fraction ``alpha(t) = (t / T)^(1 / beta)``
  of the way from its opening to one tick short of its reservation: ``beta < 1`` Boulware
  (holds out, concedes at the end), ``beta = 1`` linear, ``beta > 1`` Conceder. It accepts the
  offer on the table when that is at least as good for it as its own counter would be.
- :class:`LLMNegotiator`: a causal LM decides by :func:`agents.generate.choose` among listed
  moves ("accept 85.00", "offer 70.00", "offer 70.00 with bundle"), all individually rational
  by construction (a grid from the opening to one tick short of the reservation), given a
  prompt with its reservation, the deadline, its impatience and the public history (and, for
  the user, its private interests: the prompt never leaves the device; only the move does, and
  its words pass the party's filter). It words the move with :func:`agents.generate.generate`.

Example:
    >>> from agents.negotiation_protocol import Scenario, View
    >>> s = Scenario(list_price=100.0, user_max=80.0, brand_floor=50.0, budget=40.0)
    >>> RuleNegotiator(1.0).move(View(s.party("brand"), (), 0)).price  # opens at list price
    100.0
"""

from __future__ import annotations

import math

from ._errors import AgentError
from .generate import choose, generate
from .models import Backbone
from .negotiation_protocol import TICK, Move, Party, View

# The user opens at this share of the list price (or of its own reservation when that is
# lower): an anchor below any plausible brand floor.
USER_OPENING = 0.5
# Offers the LLM's prompt recalls: the small models' context is short (tiny-causal: 128 tokens).
HISTORY = 4


def opening(party: Party) -> float:
    """The side's first offer: the list price for the brand, a low anchor for the user."""
    lp = party.terms.list_price
    if party.side == "brand":
        return lp
    return round(USER_OPENING * min(lp, party.reservation()), 2)


def bound(party: Party, bundle: bool = False) -> float:
    """One tick short of the reservation, within [0, list price]: the last offer it may make."""
    r = party.reservation(bundle)
    b = r - TICK if party.side == "user" else r + TICK
    return min(max(b, 0.0), party.terms.list_price)


def _cents(party: Party, price: float) -> float:
    """Round to cents in this side's favour-safe direction (never past its bound)."""
    f = math.floor if party.side == "user" else math.ceil
    return f(round(price * 100, 6)) / 100


def concession(party: Party, share: float, bundle: bool = False) -> float:
    """The price ``share`` in [0, 1] of the way from the opening to the bound, in cents."""
    a, b = opening(party), bound(party, bundle)
    if (party.side == "user" and a > b) or (party.side == "brand" and a < b):
        a = b  # nothing to concede: the bound is the only rational offer
    return _cents(party, a + share * (b - a))


def _better(party: Party, offered: float, own: float) -> bool:
    return offered <= own if party.side == "user" else offered >= own


class RuleNegotiator:
    """Faratin et al. (1998) time-dependent concession with parameter ``beta`` > 0.

    Example:
        >>> from agents.negotiation_protocol import Scenario, View
        >>> s = Scenario(list_price=100.0, user_max=80.0, brand_floor=50.0, budget=40.0)
        >>> RuleNegotiator(1.0).move(View(s.party("user"), (), 5)).price  # t = 0: the anchor
        40.0
    """

    def __init__(self, beta: float) -> None:
        if not (math.isfinite(beta) and beta > 0):
            raise AgentError(f"beta must be finite and > 0, got {beta!r}")
        self.beta = float(beta)
        self.name = {1.0: "linear"}.get(self.beta, "boulware" if beta < 1 else "conceder")

    def move(self, view: View) -> Move:
        """Accept the offer on the table if it beats the own counter, else counter."""
        party, t = view.party, view.round
        share = (t / party.terms.deadline) ** (1.0 / self.beta)
        own = concession(party, share)
        last = view.last_offer
        rational = last is not None and party.surplus(last.price, last.bundle) >= 0
        if rational and (t >= party.terms.deadline or _better(party, last.price, own)):
            return Move(True, last.price, last.bundle, f"Deal at {last.price:.2f}.")
        if t >= party.terms.deadline:
            return Move(False, leave=True)
        try:
            party.check_offer(own, False)
        except AgentError:  # no rational offer is left to this side
            return Move(False, leave=True)
        verb = "pay" if party.side == "user" else "do"
        return Move(False, own, False, f"I can {verb} {own:.2f}.")


class LLMNegotiator:
    """A causal LM that chooses its move on a grid and words it.

    Args:
        backbone: a causal backbone (``load_model("tiny-causal")`` or ``"smollm2"``).
        grid: candidate prices per terms, >= 2 (the opening to one tick short of the bound).
        max_new_tokens: most tokens of words per move (0: template words only).
        temperature: of the wording (0: greedy).
    """

    def __init__(
        self,
        backbone: Backbone,
        *,
        grid: int = 8,
        max_new_tokens: int = 12,
        temperature: float = 0.7,
    ) -> None:
        if int(grid) != grid or grid < 2:
            raise AgentError(f"grid must be an integer >= 2 (candidate prices), got {grid!r}")
        if int(max_new_tokens) != max_new_tokens or max_new_tokens < 0:
            raise AgentError(f"max_new_tokens must be an integer >= 0, got {max_new_tokens!r}")
        self.backbone, self.grid = backbone, int(grid)
        self.max_new_tokens, self.temperature = int(max_new_tokens), float(temperature)
        self.name = f"llm:{backbone.name}"
        self._cache: dict[tuple[str, tuple[str, ...]], int] = {}

    def candidates(self, view: View) -> list[Move]:
        """Every move it may choose: accept (when rational) and the price grid (x bundle)."""
        party = view.party
        moves: list[Move] = []
        last = view.last_offer
        if last is not None and party.surplus(last.price, last.bundle) >= 0:
            moves.append(Move(True, last.price, last.bundle))
        if view.round >= party.terms.deadline:
            return moves
        for bundle in (False, True) if party.terms.bundle else (False,):
            # Distinct prices from the opening up to the bound, never the reservation itself.
            shares = [k / (self.grid - 1) for k in range(self.grid)]
            for p in sorted({concession(party, s, bundle) for s in shares}):
                if party.surplus(p, bundle) >= TICK - 1e-9:
                    moves.append(Move(False, p, bundle))
        return moves

    def prompt(self, view: View) -> str:
        """The on-device prompt: reservation, deadline, impatience, history, interests."""
        party, terms = view.party, view.party.terms
        role, other = ("buyer", "seller") if party.side == "user" else ("seller", "buyer")
        limit = "pay at most" if party.side == "user" else "accept at least"
        goal = "lowest" if party.side == "user" else "highest"
        said = "; ".join(
            f"{'you' if m.side == party.side else other} {'accept' if m.accept else 'offer'} "
            f"{m.price:.2f}{' with bundle' if m.bundle else ''}"
            for m in view.messages[-HISTORY:]
        )
        likes = f" You like: {', '.join(party.private_texts)}." if party.private_texts else ""
        return (
            f"You are the {role} of an item listed at {terms.list_price:.2f}.{likes} You "
            f"{limit} {party.reservation():.2f}; you want the {goal} price you can get. "
            f"Round {view.round + 1} of {terms.deadline}; "
            f"each round lowers your gain by {1 - terms.discount(party.side):.0%}. "
            f"So far: {said or 'nothing'}. Your move:"
        )

    def move(self, view: View) -> Move:
        """Choose among :meth:`candidates` by log-likelihood, then word the choice."""
        moves = self.candidates(view)
        if not moves:  # nothing rational is left: leave
            return Move(False, leave=True)
        labels = tuple(_label(m) for m in moves)
        prompt = self.prompt(view)
        key = (prompt, labels)
        if key not in self._cache:
            self._cache[key] = choose(self.backbone, prompt, labels)
        m = moves[self._cache[key]]
        words = f"I {_label(m)}."
        if self.max_new_tokens:
            other = "seller" if view.party.side == "user" else "buyer"
            said = generate(
                self.backbone,
                f"{prompt} I {_label(m)}. In one sentence, to the {other}:",
                max_new_tokens=self.max_new_tokens,
                temperature=self.temperature,
                seed=view.seed,
            )
            words = f"{words} {said}"
        return Move(m.accept, m.price, m.bundle, words)


def _label(m: Move) -> str:
    verb = "accept" if m.accept else "offer"
    return f"{verb} {m.price:.2f}{' with bundle' if m.bundle else ''}"
