"""An edge node's users and decisions: private contexts kept here, ads scored and auctioned here.

A decision for user ``u`` over candidates (n ads) is the agent's own rule
(:meth:`agents.Agent.choose_ad`, checked equal by a test): the context vector ``c`` (d,) of
``u``'s events (cached per context version), the candidates' embeddings (n, d) from the
backbone's cache (each ad text runs through the model once per served adapter), the predicted
CTR of every candidate in one batched product (:func:`agents.predict_ctr`), and one
second-price auction ranked by ``bid x CTR`` (:func:`auction.run_auction`, ties broken by the
node's seeded generator). One adapter + head serves every user, so a hosted user costs its
events and one context vector, not a copy of the model.

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

from .catalogue import Catalogue
from .errors import UnknownUserError
from .model import ServedModel
from .store import StoredEvent

_MIN_QUALITY = 1e-12  # the auction needs quality > 0 (as agents.Agent.choose_ad)


@dataclass
class CacheStats:
    """Hits and misses of the node's caches since it started (counts of texts / contexts)."""

    ad_hits: int = 0
    ad_misses: int = 0
    context_hits: int = 0
    context_misses: int = 0


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
        self._rng = rng
        self._contexts: dict[str, PrivateContext] = {}
        self._vectors: dict[str, tuple[int, np.ndarray]] = {}

    @property
    def users(self) -> int:
        """Users hosted."""
        return len(self._contexts)

    def warm(self) -> None:
        """Embed every catalogue ad once (in large batches) before the first request."""
        self._embed([a.text for a in self.catalogue.ads])

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

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        backbone = self.model.backbone
        before = backbone.cached
        rows = backbone.embed(texts)
        fresh = backbone.cached - before
        self.stats.ad_misses += fresh
        self.stats.ad_hits += len(texts) - fresh
        return rows

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
        return self.decide_columns(
            user,
            [c.ad_id for c in candidates],
            [c.text for c in candidates],
            [c.bid for c in candidates],
            [c.prior for c in candidates],
            reserve=reserve,
        )

    def decide_columns(
        self,
        user: str,
        ad_ids: Sequence[str],
        texts: Sequence[str],
        bids: Sequence[float],
        priors: Sequence[float],
        *,
        reserve: float = 0.0,
    ) -> Decision:
        """:meth:`decide` over candidates given as columns (n,) each (the service's path:
        no :class:`agents.Ad` per candidate)."""
        cvec = self.context_vector(user)
        if len(ad_ids) == 0:
            return Decision(None, 0.0)
        ads = self._embed(texts)
        ctr = predict_ctr(cvec, ads, self.model.state, np.array(priors, dtype=np.float64))
        outcome = auction.run_auction(
            np.array(bids, dtype=float),
            mechanism=self.mechanism,
            reserve=reserve,
            quality=np.maximum(ctr, _MIN_QUALITY),
            rng=self._rng,
        )
        if len(outcome.winners) == 0:
            return Decision(None, 0.0)
        return Decision(ad_ids[int(outcome.winners[0])], float(outcome.prices[0]))

    def decide_query(
        self, user: str, category: str | None, limit: int, *, reserve: float = 0.0
    ) -> Decision:
        """:meth:`decide` over the catalogue's first ``limit`` ads of ``category``."""
        return self.decide(user, self.catalogue.query(category, limit), reserve=reserve)
