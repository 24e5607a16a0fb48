"""The agents' LoRA adapter + scoring head as a federated ``Task`` on MovieLens-100k partitions.

The global arrays are the adapter + head state of :mod:`agents` (fp32 ``dict[str, ndarray]``:
LoRA ``A``/``B`` of the attention projections, then ``head.gain`` (d,), ``head.scale`` (1,),
``head.bias`` (1,), ``head.prior`` (1,)). Every movie carries the exchange's public prior
``log(1 + its positives before the users' time cuts)`` (``Ad.prior`` of :mod:`agents`).
Every MovieLens user is one device: its private context is its history of positives (ratings
>= 4, newest 30 before the time cut, as ``view`` events with their timestamps) and its click
log is, each round, its newest ``positives`` history positives (clicks) against as many
sampled unrated movies (no clicks). Users are dealt to ``num_partitions`` clients by a seeded
permutation (``partition_users``); a client trains with ``agents.train`` (DP-SGD when a
clipping norm is set) and evaluates NDCG@10 / Precision@10 of ranking every movie the user
has not rated by the agent's predicted CTR against the user's
held-out newest positives (``agents.datasets``).

One ``Backbone`` per process and model is cached at module level (``shared_backbone``): the
ClientApp runs many times in one Ray actor, and agents holding the same global adapter share
its embedding cache, so a round embeds the catalogue once per process. Torch runs on one
thread per process.

Example:
    >>> task = AgentTask(model="tiny-encoder", rank=2, users_per_client=2)
    >>> data = task.load(0, 400)
    >>> arrays, n, metrics = task.train(task.initial_arrays(), data, epochs=1, lr=1e-3, rng=0)
    >>> n == 2 * task.positives * len(data.users), "train_loss" in metrics
    (True, True)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import numpy as np

from ._errors import FederationError

HISTORY = 30  # newest positives kept as a user's context (as in benchmarks/agent_quality.py)
HALF_LIFE_S = 30 * 86400.0  # recency half-life of context events, seconds
MAX_TOKENS = 32  # movie texts are short: "Title (year). Genres: a, b"
K = 10


@dataclass(frozen=True)
class MovieLensWorld:
    """What every client derives the same way: users' splits, movie texts, the catalogue."""

    users: dict[int, Any]  # user id -> agents.datasets.UserSplit
    text: dict[int, str]  # movie id -> text
    item_ids: np.ndarray  # (n_items,) sorted movie ids
    item_texts: tuple[str, ...]  # texts in item_ids order
    item_prior: np.ndarray  # (n_items,) float32 log(1 + training positives), item_ids order

    def prior_of(self, movie_ids: np.ndarray) -> np.ndarray:
        """(n,) the exchange's prior of each movie id."""
        return self.item_prior[np.searchsorted(self.item_ids, movie_ids)]


@lru_cache(maxsize=1)
def movielens_world() -> MovieLensWorld:
    """MovieLens-100k from the installed package, split per user (cached per process)."""
    from agents.datasets import movielens, movielens_users, positive_counts

    ratings, text = movielens()
    items = np.array(sorted(text))
    users = movielens_users(ratings, history=HISTORY)
    prior = np.log1p(positive_counts(users, items)).astype(np.float32)
    return MovieLensWorld(users, text, items, tuple(text[int(i)] for i in items), prior)


_BACKBONES: dict[tuple[str, int, int, int], Any] = {}


def shared_backbone(model: str, rank: int, seed: int = 0, max_length: int = MAX_TOKENS) -> Any:
    """The process's one ``agents.Backbone`` for ``model`` with LoRA of ``rank`` enabled."""
    key = (model, int(rank), int(seed), int(max_length))
    if key not in _BACKBONES:
        import torch

        from agents import enable_lora, load_model

        # One thread per process: Ray runs one client actor per core, and more threads
        # oversubscribe the cores (a 2-layer test model embedded 20x slower with 2 threads).
        torch.set_num_threads(1)
        backbone = load_model(model, max_length=int(max_length))
        enable_lora(backbone, rank=int(rank), seed=int(seed))
        _BACKBONES[key] = backbone
    return _BACKBONES[key]


def partition_users(user_ids: np.ndarray, num_partitions: int, seed: int) -> list[np.ndarray]:
    """Deal ``user_ids`` to ``num_partitions`` clients: a seeded permutation, near-equal parts.

    Every user lands in exactly one part; part sizes differ by at most one.
    """
    ids = np.asarray(user_ids)
    if not 1 <= num_partitions <= ids.size:
        raise FederationError(
            f"num-partitions must be in 1..{ids.size} (one user at least per client), "
            f"got {num_partitions}"
        )
    order = np.random.default_rng([seed, 2]).permutation(ids)
    return [np.sort(part) for part in np.array_split(order, num_partitions)]


@dataclass(frozen=True)
class AgentData:
    """One client's devices: MovieLens user ids (and whether its labels are flipped)."""

    users: tuple[int, ...]
    flipped: bool = False  # label-flip poisoning: clicks and non-clicks swap


class LoRATask:
    """What the tasks that train the agents' adapter + head share: their global arrays."""

    @property
    def backbone(self) -> Any:
        raise NotImplementedError

    def initial_arrays(self) -> dict[str, np.ndarray]:
        """The fresh adapter (peft's: B = 0, so the base model's scores) and cosine head."""
        from agents.lora import initial_adapter
        from agents.scoring import initial_head

        return {**initial_adapter(self.backbone), **initial_head(self.backbone.dim)}

    def full_model_bytes(self) -> int:
        """Bytes of sending the whole fine-tuned model instead: every base weight + head."""
        base = sum(
            p.numel() * 4 for n, p in self.backbone.core.named_parameters() if "lora_" not in n
        )
        return int(base + 4 * (self.backbone.dim + 3))


class AgentTask(LoRATask):
    """Federated training of the agents' adapter + head (see module doc).

    Args:
        model: backbone name for ``agents.load_model`` (``"minilm"``, ``"tiny-encoder"``, ...).
        rank: LoRA rank.
        users_per_client: keep at most this many users of each partition (0: all of them).
        positives: training clicks per user and round (each paired with a sampled non-click).
        batch_size: expected DP-SGD (Poisson) batch size.
        clipping_norm: per-example clipping norm of DP-SGD; 0 trains without clipping (no DP).
        noise_multiplier: DP-SGD noise std / clipping norm (needs ``clipping_norm > 0``).
        delta: delta of the reported epsilon.
        seed: partition and LoRA-initialisation seed.
    """

    def __init__(
        self,
        model: str = "minilm",
        *,
        rank: int = 8,
        users_per_client: int = 0,
        positives: int = 4,
        batch_size: int = 16,
        clipping_norm: float = 0.0,
        noise_multiplier: float = 0.0,
        delta: float = 1e-5,
        seed: int = 0,
    ) -> None:
        if rank < 1 or users_per_client < 0 or positives < 1 or batch_size < 1:
            raise FederationError(
                "rank, positives and batch_size must be >= 1 and users_per_client >= 0, got "
                f"{rank}, {positives}, {batch_size}, {users_per_client}"
            )
        if clipping_norm < 0 or noise_multiplier < 0:
            raise FederationError("dp-sgd clipping norm and noise multiplier must be >= 0")
        if noise_multiplier > 0 and clipping_norm == 0:
            raise FederationError("dp-sgd noise needs a clipping norm > 0 (DP-SGD clips)")
        self.model, self.rank, self.users_per_client = model, rank, users_per_client
        self.positives, self.batch_size = positives, batch_size
        self.clipping_norm, self.noise_multiplier, self.delta = (
            clipping_norm,
            noise_multiplier,
            delta,
        )
        self.seed = seed

    @property
    def backbone(self) -> Any:
        return shared_backbone(self.model, self.rank, self.seed)

    def usable_users(self) -> np.ndarray:
        """Sorted ids of the users whose history gives ``positives`` clicks and a context."""
        world = movielens_world()
        return np.array(
            sorted(u for u, s in world.users.items() if len(s.history) > self.positives)
        )

    def load(self, partition_id: int, num_partitions: int) -> AgentData:
        if not 0 <= partition_id < num_partitions:
            raise FederationError(
                f"partition-id must be in 0..{num_partitions - 1}, got {partition_id}"
            )
        part = partition_users(self.usable_users(), num_partitions, self.seed)[partition_id]
        if self.users_per_client:
            part = part[: self.users_per_client]
        return AgentData(tuple(int(u) for u in part))

    def flip_labels(self, data: AgentData) -> AgentData:
        """Label-flip poisoning: this client trains on swapped clicks."""
        return replace(data, flipped=not data.flipped)

    def num_eval(self, data: AgentData) -> int:
        return len(data.users)

    def _context(self, history: np.ndarray) -> Any:
        from agents import PrivateContext

        ctx = PrivateContext(half_life=HALF_LIFE_S)
        world = movielens_world()
        for mid, ts in history:
            ctx.add("view", world.text[int(mid)], time=float(ts))
        return ctx

    def examples(
        self, arrays: dict[str, np.ndarray], data: AgentData, rng: np.random.Generator
    ) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
        """(contexts (n, d), ad texts (n,), clicks (n,), ad priors (n,)) of the client's users
        this round.

        Context vectors are computed under the global adapter (a constant of the round).
        """
        from agents.lora import activate, state_version
        from agents.scoring import HEAD_KEYS, context_vector

        world, bb = movielens_world(), self.backbone
        adapter = {k: v for k, v in arrays.items() if k not in HEAD_KEYS}
        activate(bb, adapter, state_version(adapter))
        contexts, ads, labels, movies = [], [], [], []
        for uid in data.users:
            split = world.users[uid]
            clicks = split.history[-self.positives :, 0]
            ctx = self._context(split.history[: -self.positives])
            cvec = context_vector(bb.embed([e.text for e in ctx.events]), ctx.weights(ctx.events))
            unrated = np.setdiff1d(world.item_ids, list(split.seen))
            misses = rng.choice(unrated, size=len(clicks), replace=False)
            for mid, label in [(m, 1) for m in clicks] + [(m, 0) for m in misses]:
                contexts.append(cvec)
                ads.append(world.text[int(mid)])
                labels.append(1 - label if data.flipped else label)
                movies.append(int(mid))
        priors = world.prior_of(np.array(movies, dtype=np.int64))
        return np.array(contexts, np.float32), ads, np.array(labels), priors

    def train(
        self,
        arrays: dict[str, np.ndarray],
        data: AgentData,
        *,
        epochs: int,
        lr: float,
        proximal_mu: float = 0.0,
        rng: np.random.Generator | int | None = None,
    ) -> tuple[dict[str, np.ndarray], int, dict[str, float]]:
        """``agents.train`` (Adam; DP-SGD with clipping and noise when configured).

        Metrics: ``train_loss`` (mean BCE of the steps), ``steps``, and under DP-SGD
        ``epsilon`` (example-level, this round's run, at ``delta``).
        """
        from agents import train

        if proximal_mu > 0:
            raise FederationError(
                "the agent task has no proximal term (agents.train has none): proximal-mu "
                "must be 0; use fedavg, fedadam or a robust strategy"
            )
        gen = np.random.default_rng(rng)
        contexts, ads, labels, priors = self.examples(arrays, data, gen)
        fit = train(
            self.backbone,
            arrays,
            contexts,
            ads,
            labels,
            priors=priors,
            epochs=float(epochs),
            batch_size=self.batch_size,
            lr=lr,
            max_grad_norm=self.clipping_norm or None,
            noise_multiplier=self.noise_multiplier,
            delta=self.delta,
            rng=gen,
        )
        metrics = {
            "train_loss": float(np.mean(fit.losses)) if fit.losses else 0.0,
            "steps": float(fit.plan.steps),
        }
        if self.clipping_norm and self.noise_multiplier:
            metrics["epsilon"] = float(fit.plan.epsilon)
        return fit.state, len(labels), metrics

    def evaluate(self, arrays: dict[str, np.ndarray], data: AgentData) -> dict[str, float]:
        """Mean NDCG@10 and Precision@10 of the agents holding ``arrays`` over the users."""
        from agents import Agent
        from agents.datasets import precision_ndcg_at_k

        world = movielens_world()
        rows = []
        for uid in data.users:
            split = world.users[uid]
            agent = Agent(self.backbone, self._context(split.history), state=arrays)
            scores = agent.predict_ctr(world.item_texts, world.item_prior)
            rows.append(precision_ndcg_at_k(scores, world.item_ids, split.test, split.seen, k=K))
        precision, ndcg = np.mean(rows, axis=0) if rows else (0.0, 0.0)
        return {"ndcg@10": float(ndcg), "precision@10": float(precision)}
