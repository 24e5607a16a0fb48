"""An edge node's users and decisions: private contexts kept here, ads scored and auctioned here.

A decision for user ``u`` over candidates (n ads) is the agent's own rule
(:meth:`agents.Agent.choose_ad`, checked equal by a test): the context vector ``c`` (d,) of
``u``'s events (cached per context version), the candidates' embeddings (n, d) from the
node's matrix (:class:`.embeddings.AdEmbeddings`: each ad text runs through the model once
per served adapter), the predicted CTR of every candidate in one batched product
(:func:`agents.predict_ctr`), and a second-price auction ranked by ``bid x CTR``. Decisions
asked at the same moment share one batched auction call (:func:`auction.run_auctions` over
(A, n) bids, shorter lists padded with "no bid"; ties broken by the node's seeded generator),
which costs about a seventh of A single calls at A = 8. One adapter + head serves every user,
so a hosted user costs its events and one context vector, not a copy of the model.

Users are created by their first event; a decision for a user the node does not host raises
:class:`UnknownUserError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

import auction
from agents import Ad, Decision, PrivateContext
from agents.scoring import context_vector, predict_ctr
from auction import AuctionError

from .catalogue import Catalogue
from .embeddings import AdEmbeddings
from .errors import UnknownUserError
from .model import ServedModel
from .store import StoredEvent

_MIN_QUALITY = 1e-12  # the auction needs quality > 0 (as agents.Agent.choose_ad)


@dataclass
class CacheStats:
    """Context vectors reused / recomputed since the node started."""

    context_hits: int = 0
    context_misses: int = 0


@dataclass(frozen=True)
class DecisionInput:
    """One decision to make: the user, the candidates as columns (n,) each, the reserve."""

    user: str
    ad_ids: Sequence[str]
    texts: Sequence[str]
    bids: Sequence[float]
    priors: Sequence[float]
    reserve: float = 0.0


class EdgeNode:
    """The users a node hosts and the decisions it makes for them.

    Args:
        model: the served backbone and adapter + head.
        catalogue: the ads a catalogue query draws from.
        rng: tie-breaking generator of the auctions (seeded from the run's seed).
        max_events: newest events each user's context keeps, >= 1.
        mechanism: the auction mechanism (``auction.run_auction``'s names, one slot).
    """

    def __init__(
        self,
        model: ServedModel,
        catalogue: Catalogue,
        *,
        rng: np.random.Generator,
        max_events: int = 200,
        mechanism: str = "second_price",
    ) -> None:
        self.model, self.catalogue, self.mechanism = model, catalogue, mechanism
        self.max_events = max_events
        self.stats = CacheStats()
        self.ads = AdEmbeddings(model.backbone)
        self._rng = rng
        self._contexts: dict[str, PrivateContext] = {}
        self._vectors: dict[str, tuple[int, np.ndarray]] = {}

    @property
    def users(self) -> int:
        """Users hosted."""
        return len(self._contexts)

    def warm(self) -> None:
        """Embed every catalogue ad once (in large batches) before the first request."""
        self.ads.rows([a.text for a in self.catalogue.ads])

    def apply(self, event: StoredEvent) -> None:
        """Add a stored event to its user's context (creating the user on its first event)."""
        ctx = self._contexts.get(event.user)
        if ctx is None:
            ctx = self._contexts[event.user] = PrivateContext(max_events=self.max_events)
        ctx.add(event.kind, event.text, event.time, event.category)

    def context(self, user: str) -> PrivateContext:
        """The user's private context (on the node only; never in a response)."""
        ctx = self._contexts.get(user)
        if ctx is None:
            raise UnknownUserError(
                f"{user[:80]!r} is not hosted here: users are created by their first "
                "event (POST /events)"
            )
        return ctx

    def context_vector(self, user: str) -> np.ndarray:
        """(d,) the user's unit-norm context vector, recomputed only when the context changed."""
        ctx = self.context(user)
        hit = self._vectors.get(user)
        if hit is not None and hit[0] == ctx.version:
            self.stats.context_hits += 1
            return hit[1]
        self.stats.context_misses += 1
        events = ctx.scored_events()
        emb = self.model.backbone.embed([e.text for e in events])
        vec = context_vector(emb, ctx.weights(events))
        self._vectors[user] = (ctx.version, vec)
        return vec

    def decide(self, user: str, candidates: Sequence[Ad], *, reserve: float = 0.0) -> Decision:
        """Choose among ``candidates`` for ``user``: the winner's id (None if no bid clears
        ``reserve``) and its price per click. Nothing else about the decision leaves."""
        columns = ([c.ad_id for c in candidates], [c.text for c in candidates])
        bids, priors = [c.bid for c in candidates], [c.prior for c in candidates]
        (out,) = self.decide_many([DecisionInput(user, *columns, bids, priors, reserve)])
        if isinstance(out, Exception):
            raise out
        return out

    def decide_many(self, requests: Sequence[DecisionInput]) -> list[Decision | Exception]:
        """Decide ``requests`` (A of them) together: each scored on its own, then one batched
        auction call (``auction.run_auctions``, lists padded with "no bid"); each result is its
        decision or the error that refused it (unknown user, bids the auction cannot rank)."""
        out: list[Decision | Exception] = [Decision(None, 0.0)] * len(requests)
        live, scored = [], []
        for a, req in enumerate(requests):
            try:
                cvec = self.context_vector(req.user)
            except UnknownUserError as exc:
                out[a] = exc
                continue
            if len(req.ad_ids):
                priors = np.array(req.priors, dtype=np.float64)
                ctr = predict_ctr(cvec, self.ads.rows(req.texts), self.model.state, priors)
                live.append(a)
                scored.append(np.maximum(ctr, _MIN_QUALITY))
        if not live:
            return out
        width = max(len(q) for q in scored)
        bids, quality = np.zeros((len(live), width)), np.ones((len(live), width))
        for row, (a, q) in enumerate(zip(live, scored, strict=True)):
            bids[row, : len(q)], quality[row, : len(q)] = requests[a].bids, q
        reserve = np.array([requests[a].reserve for a in live])
        try:
            result = auction.run_auctions(
                bids, mechanism=self.mechanism, reserve=reserve, quality=quality, rng=self._rng
            )
        except AuctionError as exc:
            if len(live) == 1:
                out[live[0]] = exc
                return out
            for a in live:  # find the request the auction refuses; the others go on
                out[a] = self.decide_many([requests[a]])[0]
            return out
        winners, prices = result.winners[:, 0].tolist(), result.prices[:, 0].tolist()
        for a, w, p in zip(live, winners, prices, strict=True):
            if w >= 0:
                out[a] = Decision(requests[a].ad_ids[w], float(p))
        return out

    def decide_query(
        self, user: str, category: str | None, limit: int, *, reserve: float = 0.0
    ) -> Decision:
        """:meth:`decide` over the catalogue's first ``limit`` ads of ``category``."""
        return self.decide(user, self.catalogue.query(category, limit), reserve=reserve)
