"""Alternating-offers bargaining over a price (a discount off the list price), and its theory.

A user agent and a brand agent bargain over the price of one item (the discount is
``list_price - price``) and optionally a bundle. Each side holds a private :class:`Party`:
its reservation price (the user's most it pays, the brand's least it accepts, i.e. its
largest discount, the budget, applied to its cost floor) and, for the user, the texts of its
private context. Only :class:`Message` records cross between the agents: side, round, price,
bundle flag and words. The words pass through the sender's :class:`WordsFilter`, which drops
any digit run other than the offer's own price and any word of the sender's private texts, so
the reservation and the context never leave in an offer (the offer's price itself is the one
number the protocol lets out, and a party keeps one tick away from its own reservation).

Rules the :class:`Dialogue` enforces: sides alternate, the first mover opens at round 0, an
offer after the deadline (round >= ``deadline``) is refused, prices must be finite and in
``[0, list_price]``; each :class:`Party` refuses its own offers and acceptances that would give
it negative surplus (individual rationality) and, for the brand, any discount beyond its
budget. Every refusal is a :class:`~agents.AgentError` naming the field.

Predictions (surplus shares relative to the zone of agreement ``[brand_min, user_max]``):

- Nash (1950) bargaining with the disagreement point at the reservations and bargaining power
  ``w`` for the user: maximise ``(user_max - p)^w (p - brand_min)^(1 - w)``, i.e. the user gets
  share ``w`` of the surplus; with equal power the midpoint of the zone.
- Rubinstein (1982) alternating offers with per-round discount factors ``d1`` (first mover)
  and ``d2``: the unique subgame-perfect equilibrium gives the first mover the share
  ``(1 - d2) / (1 - d1 d2)`` immediately.

Example:
    >>> nash_price(user_max=80.0, brand_min=60.0)
    70.0
    >>> round(rubinstein_share(0.9, 0.9), 4)  # first-mover advantage: 1 / (1 + d)
    0.5263
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from ._errors import AgentError

Side = Literal["user", "brand"]
SIDES: tuple[Side, Side] = ("user", "brand")
# Offers and words carry prices in cents: a party keeps at least one tick from its reservation.
TICK = 0.01


def _finite(name: str, x: float, lo: float = -math.inf, hi: float = math.inf) -> float:
    x = float(x)
    if not (math.isfinite(x) and lo <= x <= hi):
        raise AgentError(f"{name} must be a finite number in [{lo}, {hi}], got {x!r}")
    return x


def nash_price(user_max: float, brand_min: float, *, power: float = 0.5) -> float:
    """The Nash bargaining price (money units): the user gets share ``power`` of the surplus.

    Args:
        user_max: the user's reservation (most it pays); brand_min: the brand's (least it
            accepts); the zone of agreement is ``[brand_min, user_max]``, non-empty.
        power: the user's bargaining power in [0, 1] (0.5: the midpoint).

    Raises:
        AgentError: an empty zone of agreement, or ``power`` outside [0, 1].

    Example:
        >>> nash_price(100.0, 60.0, power=0.25)
        90.0
    """
    hi, lo = _finite("user_max", user_max), _finite("brand_min", brand_min)
    w = _finite("power", power, 0.0, 1.0)
    if lo > hi:
        raise AgentError(f"empty zone of agreement: brand_min {lo} > user_max {hi}")
    return hi - w * (hi - lo)


def rubinstein_share(d1: float, d2: float) -> float:
    """The first mover's SPE share ``(1 - d2) / (1 - d1 d2)`` of the surplus (Rubinstein 1982).

    Args:
        d1: the first mover's per-round discount factor; d2: the responder's; both in
            [0, 1] and not both 1 (no impatience leaves the share undetermined).

    Example:
        >>> rubinstein_share(0.5, 0.5), rubinstein_share(0.9, 0.0)  # an impatient responder
        (0.6666666666666666, 1.0)
    """
    a, b = _finite("d1", d1, 0.0, 1.0), _finite("d2", d2, 0.0, 1.0)
    if a * b >= 1.0:
        raise AgentError("d1 and d2 must not both be 1: the SPE share is undetermined")
    return (1.0 - b) / (1.0 - a * b)


@dataclass(frozen=True)
class Terms:
    """The public part of a problem: what both sides know.

    Attributes:
        list_price: price before any discount (money units); deadline: offers allowed at
        rounds ``0 .. deadline - 1``; d_user, d_brand: per-round discount factors; first: the
        side that opens; bundle: whether a bundle may be offered.
    """

    list_price: float
    deadline: int
    d_user: float
    d_brand: float
    first: Side
    bundle: bool

    def discount(self, side: Side) -> float:
        """Per-round discount factor of ``side``."""
        return self.d_user if side == "user" else self.d_brand


@dataclass(frozen=True)
class Scenario:
    """One bargaining problem. Money in the item's currency, rounds counted from 0.

    Attributes:
        list_price: the public price before any discount, > 0, in whole cents.
        user_max: the user's reservation: the most it pays for the item alone (private).
        brand_floor: the brand's cost: the least it accepts for the item alone (private).
        budget: the brand's largest discount off ``list_price`` (private), >= 0.
        bundle_value: what the bundle adds to the user's reservation (private), >= 0.
        bundle_cost: what the bundle adds to the brand's (private), >= 0.
        deadline: offers allowed at rounds ``0 .. deadline - 1``, >= 1.
        d_user, d_brand: per-round discount factors in [0, 1] (utility x d^round).
        first: the side that opens.
    """

    list_price: float
    user_max: float
    brand_floor: float
    budget: float
    bundle_value: float = 0.0
    bundle_cost: float = 0.0
    deadline: int = 10
    d_user: float = 0.95
    d_brand: float = 0.95
    first: Side = "brand"

    def __post_init__(self) -> None:
        lp = _finite("list_price", self.list_price, TICK)
        if abs(lp * 100 - round(lp * 100)) > 1e-6:
            raise AgentError(f"list_price must be a whole number of cents, got {lp!r}")
        for name in ("user_max", "brand_floor", "budget", "bundle_value", "bundle_cost"):
            _finite(name, getattr(self, name), 0.0)
        for name in ("d_user", "d_brand"):
            _finite(name, getattr(self, name), 0.0, 1.0)
        if int(self.deadline) != self.deadline or self.deadline < 1:
            raise AgentError(f"deadline must be an integer >= 1 (rounds), got {self.deadline!r}")
        if self.first not in SIDES:
            raise AgentError(f"first must be one of {SIDES}, got {self.first!r}")

    @property
    def terms(self) -> Terms:
        """What both sides know."""
        bundle = self.bundle_value > 0 or self.bundle_cost > 0
        return Terms(self.list_price, self.deadline, self.d_user, self.d_brand, self.first, bundle)

    def party(self, side: Side, private_texts: Sequence[str] = ()) -> Party:
        """The private party of ``side`` (the user's with its context's event texts)."""
        texts = tuple(private_texts)
        if side == "user":
            return Party("user", self.user_max, self.bundle_value, self.terms, 0.0, texts)
        least = self.list_price - self.budget
        lowest = max(self.brand_floor, least)
        return Party("brand", lowest, self.bundle_cost, self.terms, least, texts)

    def zone(self, bundle: bool = False) -> tuple[float, float]:
        """``(brand_min, user_max)`` for the terms; empty when the first exceeds the second."""
        lo = self.party("brand").reservation(bundle)
        return lo, min(self.party("user").reservation(bundle), self.list_price)


@dataclass(frozen=True)
class Message:
    """What crosses between the agents: one offer (or an acceptance of the last one)."""

    side: Side
    round: int
    price: float
    bundle: bool
    words: str
    accept: bool = False


class WordsFilter:
    """Cleans a side's words so that nothing private leaves in them.

    Drops every digit run except those of the offer's own price, and every word (>= 3 letters,
    case-insensitive) that occurs in one of the private texts; collapses whitespace; at most
    ``max_chars`` characters.

    Example:
        >>> f = WordsFilter(["trail running shoes"])
        >>> f.clean("My trail budget is 63.27, I offer 40.00 now", price=40.0)
        'My budget is , I offer 40.00 now'
    """

    def __init__(self, private_texts: Sequence[str], max_chars: int = 160) -> None:
        self._words = {w.lower() for t in private_texts for w in re.findall(r"[^\W\d_]{3,}", t)}
        self.max_chars = max_chars

    def clean(self, text: str, *, price: float) -> str:
        """``text`` with private words and foreign numbers removed (``price`` in cents kept)."""
        own = f"{price:.2f}"
        keep = {own}

        def number(m: re.Match[str]) -> str:
            return m.group(0) if m.group(0) in keep else ""

        text = re.sub(r"\d+(?:[.,]\d+)*", number, text)
        text = re.sub(
            r"[^\W\d_]+", lambda m: "" if m.group(0).lower() in self._words else m[0], text
        )
        text = " ".join(text.split())
        return text[: self.max_chars].rstrip()


@dataclass(frozen=True)
class Party:
    """A side's private state: it stays on that side's device.

    Attributes:
        side: "user" or "brand".
        base: reservation price for the item alone (user: most it pays; brand: least it
            accepts, its cost floor or the list price less its discount budget, whichever is
            higher).
        bundle_delta: what the bundle adds to the reservation.
        terms: the public part of the problem.
        least: the brand's lowest price within its discount budget (0 for the user).
        private_texts: texts that must never leave (the user's context events).
    """

    side: Side
    base: float
    bundle_delta: float
    terms: Terms = field(repr=False)
    least: float = field(default=0.0, repr=False)
    private_texts: tuple[str, ...] = field(default=(), repr=False)

    def reservation(self, bundle: bool = False) -> float:
        """Reservation price for the terms (money units)."""
        return self.base + (self.bundle_delta if bundle else 0.0)

    def surplus(self, price: float, bundle: bool = False) -> float:
        """Undiscounted surplus of a deal at ``price`` (>= 0 iff individually rational)."""
        r = self.reservation(bundle)
        return r - price if self.side == "user" else price - r

    def check_offer(self, price: float, bundle: bool) -> float:
        """``price`` if this side may propose it, else :class:`AgentError` naming the field.

        A proposal must keep one tick of surplus (so the reservation itself is never sent;
        at the public ends 0 and the list price, surplus >= 0 suffices) and the brand's must
        stay within its discount budget.
        """
        if bundle and not self.terms.bundle:
            raise AgentError("bundle refused: no bundle is on offer in this negotiation")
        p = _finite("price", price, 0.0, self.terms.list_price)
        if self.side == "brand" and p < self.least - 1e-9:
            raise AgentError(f"price {p:.2f} refused: a discount beyond the brand's budget")
        # The ends of the range are public: proposing one reveals nothing, so weak IR suffices.
        margin = 0.0 if p in (0.0, self.terms.list_price) else TICK - 1e-9
        if self.surplus(p, bundle) < margin - 1e-12:
            raise AgentError(
                f"price {p:.2f} refused: the {self.side} would propose below its reservation "
                "(individual rationality)"
            )
        return p

    def check_accept(self, offer: Message) -> None:
        """Refuse (AgentError) accepting ``offer`` when it would leave negative surplus."""
        if self.surplus(offer.price, offer.bundle) < -1e-9:
            raise AgentError(
                f"accept refused: price {offer.price:.2f} is below the {self.side}'s "
                "reservation (individual rationality)"
            )

    def words_filter(self) -> WordsFilter:
        """The filter this side's words pass through before they leave."""
        return WordsFilter(self.private_texts)


class Dialogue:
    """The public log of one negotiation; refuses messages that break the protocol.

    Example:
        >>> s = Scenario(list_price=100.0, user_max=80.0, brand_floor=50.0, budget=40.0)
        >>> d = Dialogue(s.terms)
        >>> d.post(Message("brand", 0, 95.0, False, "95.00 for you"))
        >>> d.post(Message("user", 1, 95.0, False, "deal", accept=True))
        >>> d.agreement.price, d.turn
        (95.0, None)
    """

    def __init__(self, terms: Terms) -> None:
        self.terms = terms
        self.messages: list[Message] = []
        self.agreement: Message | None = None

    @property
    def round(self) -> int:
        """The round of the next message."""
        return len(self.messages)

    @property
    def turn(self) -> Side | None:
        """The side to move next; None once agreed or past the deadline."""
        # Offers at rounds 0 .. deadline - 1; at round deadline only an acceptance may follow.
        if self.agreement is not None or self.round > self.terms.deadline:
            return None
        r = self.round
        first = self.terms.first
        return first if r % 2 == 0 else SIDES[1 - SIDES.index(first)]

    @property
    def last_offer(self) -> Message | None:
        """The latest offer on the table (None before the opening)."""
        return self.messages[-1] if self.messages else None

    def post(self, msg: Message) -> None:
        """Append ``msg`` after checking turn, round, deadline, price range and acceptance."""
        turn = self.turn
        if turn is None:
            raise AgentError(f"round {msg.round} refused: the negotiation is over")
        if msg.side != turn:
            raise AgentError(f"side {msg.side!r} refused: it is {turn!r}'s turn")
        if msg.round != self.round:
            raise AgentError(f"round must be {self.round}, got {msg.round}")
        _finite("price", msg.price, 0.0, self.terms.list_price)
        if msg.bundle and not self.terms.bundle:
            raise AgentError("bundle refused: no bundle is on offer in this negotiation")
        if msg.accept:
            last = self.last_offer
            if last is None or (last.price, last.bundle) != (msg.price, msg.bundle):
                raise AgentError("accept must repeat the price and bundle of the last offer")
        elif msg.round >= self.terms.deadline:
            raise AgentError(
                f"round {msg.round} refused: offers end at deadline {self.terms.deadline}"
            )
        self.messages.append(msg)
        if msg.accept:
            self.agreement = msg


@dataclass(frozen=True)
class View:
    """What a negotiator sees when it moves: its own party, the public log, a seed.

    Attributes:
        party: its private side (never sent); messages: the public log so far;
        seed: for any randomness in its wording.
    """

    party: Party
    messages: tuple[Message, ...]
    seed: int

    @property
    def round(self) -> int:
        """The round of this move."""
        return len(self.messages)

    @property
    def last_offer(self) -> Message | None:
        """The other side's offer on the table (None when opening)."""
        return self.messages[-1] if self.messages else None


@dataclass(frozen=True)
class Move:
    """A negotiator's answer: accept the offer on the table, counter with ``price``, or leave
    (no deal; what a side with no rational offer left does)."""

    accept: bool
    price: float = math.nan
    bundle: bool = False
    words: str = ""
    leave: bool = False


class Negotiator(Protocol):
    """Anything with ``move(view) -> Move`` (rule agents, LLM agents, test stubs)."""

    def move(self, view: View) -> Move:
        """The next move given this side's view."""
        ...
