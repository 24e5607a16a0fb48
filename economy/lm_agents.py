"""Language-model agents as the devices' scorers: the auction's quality is each user's
``agents.Agent`` predicted CTR of every advertiser's ad text.

Every user has its own :class:`agents.Agent` (private context = the world's history events
for that user, then the clicks it makes in the market), and all agents share one
:class:`agents.Backbone`. What makes a market step cheap:

- Agents holding the same adapter (all of them until someone trains, and again after a
  federated round hands out the global adapter) share the backbone's embedding cache, keyed by
  ``(adapter version, text)``: each ad text and each history text runs through the model once
  per adapter version. The cache is warmed through one agent in large batches before the
  first step, so no agent runs the model on a handful of texts at a time.
- Each agent caches its context vector per ``(adapter version, context version)``; on top of
  that this scorer keeps each user's last row of predicted CTRs under the same key, so a step
  asks the model nothing for a user whose context did not change.
- A clicked ad becomes a ``click`` event in the user's context (its text is cached already),
  so only that user's context vector is recomputed: a weighted sum of cached embeddings.

Clicks carry the simulator's clock: a step is one hour after the user's newest history event
(``STEP_SECONDS``), so the context's recency weights see clicks as the newest events.

Federated rounds (``federated.every``, :mod:`economy.federated`) train the agents' adapter +
head through Flower; afterwards every agent loads the new global state (:meth:`LMScorer.adopt`),
the old version's embeddings are dropped and every text is embedded once under the new one.

With ``agents.scorer = "student"`` the devices score with a device-sized student
(:mod:`agents.distill`) distilled at the start of the run from the agents' teacher (the LoRA
agent they hold): first on pseudo-contexts of the public ad texts, then on each device's own
context (each device distils the global student locally, the server averages the students:
FedAvg with user-level DP: each device's update clipped to ``federated.clipping_norm``, the
server's noise ``federated.noise_multiplier`` x that norm / devices; one Gaussian mechanism per
user, charged to the run's accountant, and a device whose budget cannot pay sits it out). The
teacher's agents stay for the click logs; the auction's quality is the student's CTR. A
simulator shortcut computes the devices' local steps in one process.
"""

from __future__ import annotations

import numpy as np

from agents import Agent, PrivateContext, enable_lora, load_model
from agents.accountant import UserAccountant
from agents.distill import (
    DistillConfig,
    Student,
    distill,
    distill_federated,
    lora_teacher,
    public_contexts,
)

from .config import AgentsSection, ConfigError
from .world import World

STEP_SECONDS = 3600.0
STUDENT = DistillConfig(buckets=4096, dim=32, epochs=20)  # the public pass; devices: 3 steps


def _context(history: tuple[tuple[str, str, float], ...], max_events: int) -> PrivateContext:
    ctx = PrivateContext(max_events=max_events)
    for kind, text, time in history:
        ctx.add(kind, text, time=time)
    return ctx


class LMScorer:
    """Predicted CTR of every ad for every user, from one agent per user on a shared model.

    Args:
        world: a world with texts (``world.texts``: ad texts and private histories).
        cfg: the ``[agents]`` section (scorer, model name, tokens per text).
        max_events: newest events each context keeps (history plus clicks).
        rng: seed of the student's distillation (``cfg.scorer == "student"`` only).
        privacy: the run's per-user accountant, charged for the student's federated pass
            (default: a fresh one without a budget).
        clipping_norm, noise_multiplier: user-level DP of that pass (``None``, 0: none).

    Raises:
        ConfigError: the world has no texts.
    """

    def __init__(
        self,
        world: World,
        cfg: AgentsSection,
        max_events: int = 200,
        rng: np.random.Generator | int | None = None,
        privacy: UserAccountant | None = None,
        clipping_norm: float | None = None,
        noise_multiplier: float = 0.0,
    ) -> None:
        if world.texts is None:
            raise ConfigError(f"agents.scorer = {cfg.scorer!r}: the world has no texts to score")
        histories = world.texts.histories
        # Every text any agent will embed (clicks are ad texts), in length order so batches
        # pad to similar lengths; fixed for the run, so a restored scorer embeds the same
        # batches and gets bit-identical embeddings.
        texts = dict.fromkeys(world.texts.ads)
        texts.update(dict.fromkeys(text for h in histories for _, text, _ in h))
        self._setup(
            cfg,
            list(world.texts.ads),
            [world.texts.categories[c] for c in world.ad_category],
            [_context(h, max_events) for h in histories],
            np.array([max((t for *_, t in h), default=0.0) for h in histories]),
            sorted(texts, key=len),
            None,
        )
        self.student = None
        if cfg.scorer == "student":
            dp = {"clipping_norm": clipping_norm, "noise_multiplier": noise_multiplier}
            self.student = self._distil(np.random.default_rng(rng), privacy, dp)

    def _setup(
        self,
        cfg: AgentsSection,
        ads: list[str],
        ad_category: list[str],
        contexts: list[PrivateContext],
        clock: np.ndarray,
        texts: list[str],
        state: dict[str, np.ndarray] | None,
        student: dict[str, np.ndarray] | None = None,
    ) -> None:
        self.cfg, self.ads, self.ad_category, self._clock = cfg, ads, ad_category, clock
        self._texts = texts
        self.backbone = load_model(cfg.model, max_length=cfg.max_length)
        enable_lora(self.backbone, rank=cfg.lora_rank)
        self.agents = [Agent(self.backbone, ctx, state=state) for ctx in contexts]
        self._rows: dict[int, tuple[tuple[str, int], np.ndarray]] = {}
        self.student = Student(student) if student is not None else None
        self.warm()

    def _distil(
        self, rng: np.random.Generator, privacy: UserAccountant | None, dp: dict
    ) -> Student:
        """The student: distilled on public pseudo-contexts of the ad texts, then refined on
        every device's own context (one DP-FedAvg round over all devices, 3 local steps each,
        ``dp`` its clipping norm and noise multiplier, charged to ``privacy``)."""
        teacher = lora_teacher(self.backbone, self.agents[0].state())
        size = min(5, len(self.ads))
        public = distill(
            teacher,
            public_contexts(self.ads, 200, size, rng=rng),
            self.ads,
            config=STUDENT,
            rng=rng,
        ).student
        users = [u for u, a in enumerate(self.agents) if a.context.scored_events()]
        if not users:
            return public
        return distill_federated(
            teacher,
            [self.agents[u].context for u in users],
            self.ads,
            rounds=1,
            per_round=len(users),
            config=DistillConfig(buckets=STUDENT.buckets, dim=STUDENT.dim, epochs=3, lr=0.005),
            init=public,
            privacy=privacy,
            device_ids=users,
            rng=rng,
            **dp,
        ).student

    def __getstate__(self) -> dict:
        """What a checkpoint keeps: contexts and the one adapter + head state every agent holds
        between steps (a round ends with all agents on the
        global state); not the model, which is reloaded by name."""
        return {
            "cfg": self.cfg,
            "ads": self.ads,
            "ad_category": self.ad_category,
            "contexts": [a.context for a in self.agents],
            "clock": self._clock,
            "texts": self._texts,
            "state": self.agents[0].state() if self.agents else None,
            "student": self.student.state() if self.student is not None else None,
        }

    def __setstate__(self, data: dict) -> None:
        self._setup(**data)

    def warm(self) -> None:
        """Embed every ad and history text once, in large batches, under the agents' adapter
        (run through the first agent: the cache is shared by all agents of that version)."""
        if self.agents:
            self.agents[0].predict_ctr(self._texts)

    def _row(self, user: int) -> np.ndarray:
        agent = self.agents[user]
        key = (agent.version, agent.context.version)
        hit = self._rows.get(user)
        if hit is None or hit[0] != key:
            # the auction needs quality > 0; float32 sigmoids of very low logits round to 0
            ctr = (
                agent.predict_ctr(self.ads)
                if self.student is None
                else self.student.predict_ctr(agent.context, self.ads)
            )
            hit = (key, np.maximum(ctr.astype(float), 1e-12))
            self._rows[user] = hit
        return hit[1]

    def predict(self, users: np.ndarray) -> np.ndarray:
        """(len(users), advertisers) predicted CTR of each ad for each impression's user."""
        unique, inverse = np.unique(users, return_inverse=True)
        if unique.size == 0:
            return np.zeros((0, len(self.ads)))
        return np.stack([self._row(int(u)) for u in unique])[inverse]

    def observe(self, step: int, users: np.ndarray, ads: np.ndarray, clicks: np.ndarray) -> None:
        """Log shown ads ``ads[i]`` to ``users[i]`` in their click logs; clicks also become
        context events (time: ``step + 1`` hours after the user's newest history event).

        Each user's impressions are logged in one call, in the order given."""
        if len(users) == 0:
            return
        order = np.argsort(users, kind="stable")
        users, ads, clicks = users[order], ads[order], clicks[order]
        times = (self._clock[users] + STEP_SECONDS * (step + 1)).tolist()
        ads_list, clicks_list = ads.tolist(), clicks.tolist()
        starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]]).tolist()
        for lo, hi in zip(starts, [*starts[1:], len(users)], strict=True):
            shown = ads_list[lo:hi]
            self.agents[int(users[lo])].context.record_impressions(
                [str(a) for a in shown],
                [self.ads[a] for a in shown],
                clicks_list[lo:hi],
                times[lo:hi],
                [self.ad_category[a] for a in shown],
            )

    def adopt(self, state: dict[str, np.ndarray]) -> None:
        """Every agent loads the new global adapter + head (after a federated round)."""
        for agent in self.agents:
            agent.load_state(state)
        self._rows.clear()  # rows are keyed by the adapter's version, not the head's
        self.backbone.clear_cache()  # nobody holds the old version any more
        self.warm()
