"""What a federated client learns: the ``Task`` interface and a built-in click-model task.

A task gives the initial global arrays, a client's private data for its partition, local
training and local evaluation, all over plain ``dict[str, np.ndarray]`` (what an ArrayRecord
carries). ``agents`` plugs its LoRA adapter + head in through the same interface.

The built-in ``ClickTask``: users of a seeded synthetic population (community tastes, as in
``economy``) see ads of C categories and click with their hidden CTR. The global model is a
bilinear logistic click model ``p(click) = sigmoid(h_u^T W c_a + b)`` over the user's own
click-history shares ``h_u`` (C,) and the ad's category one-hot ``c_a`` (C,): it learns, across
users, which past interests predict which clicks. Evaluation ranks 20 candidate ads per
held-out user by predicted CTR: NDCG@10 with the true CTRs as graded relevance, Precision@10
with each query's 10 highest-CTR candidates as the relevant ones (``agents.metrics``).

Example:
    >>> task = ClickTask(seed=0)
    >>> data = task.load(0, 4)
    >>> arrays, n, _ = task.train(task.initial_arrays(), data, epochs=1, lr=0.5, rng=0)
    >>> sorted(arrays), n > 0
    (['W', 'b'], True)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Protocol

import numpy as np
from scipy.special import expit

from ._errors import FederationError
from .poisoning import flip_labels


@dataclass(frozen=True)
class ClientData:
    """One client's private data: training impressions and held-out ranking queries."""

    x_hist: np.ndarray  # (m, C) the user's click-history shares at each impression
    ad_cat: np.ndarray  # (m,) category of the ad shown
    clicks: np.ndarray  # (m,) 0/1
    test_hist: np.ndarray  # (q, C) held-out users' history shares
    test_ctr: np.ndarray  # (q, K) their true CTR for each of K candidate ads
    test_cat: np.ndarray  # (q, K) the candidates' categories


class Task(Protocol):
    """The interface a client model offers to the Flower apps."""

    def initial_arrays(self) -> dict[str, np.ndarray]: ...

    def load(self, partition_id: int, num_partitions: int) -> Any: ...

    def train(
        self,
        arrays: dict[str, np.ndarray],
        data: Any,
        *,
        epochs: int,
        lr: float,
        proximal_mu: float = 0.0,
        rng: np.random.Generator | int | None = None,
    ) -> tuple[dict[str, np.ndarray], int, dict[str, float]]: ...

    def evaluate(self, arrays: dict[str, np.ndarray], data: Any) -> dict[str, float]: ...

    def flip_labels(self, data: Any) -> Any:
        """The same data with swapped labels (the label-flip attack)."""
        ...

    def num_eval(self, data: Any) -> int:
        """How many held-out queries ``evaluate`` averages over."""
        ...

    def full_model_bytes(self) -> int:
        """Bytes of sending the whole model instead of the global arrays."""
        ...


class ClickTask:
    """Bilinear logistic click model on a seeded synthetic population (see module doc).

    Args:
        categories: C.
        users_per_client: users in each partition.
        impressions_per_user: training impressions per user.
        candidates: K ads ranked per held-out query.
        seed: population seed (every client derives the same world from it).
    """

    def __init__(
        self,
        categories: int = 8,
        users_per_client: int = 40,
        impressions_per_user: int = 30,
        candidates: int = 20,
        seed: int = 0,
    ) -> None:
        if categories < 2 or users_per_client < 2 or candidates < 2:
            raise FederationError("categories, users_per_client and candidates must be >= 2")
        self.c, self.users, self.imps, self.k, self.seed = (
            categories,
            users_per_client,
            impressions_per_user,
            candidates,
            seed,
        )
        world = np.random.default_rng([seed, 0])
        self.tastes = world.dirichlet(np.full(categories, 0.3), size=4)

    def initial_arrays(self) -> dict[str, np.ndarray]:
        return {"W": np.zeros((self.c, self.c), np.float32), "b": np.full(1, -2.0, np.float32)}

    def _users(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(n, C) hidden CTR per category and (n, C) observed history shares."""
        community = rng.integers(0, self.tastes.shape[0], size=n)
        prefs = np.vstack([rng.dirichlet(20 * t + 0.1) for t in self.tastes[community]])
        ctr = np.minimum(1.0, 0.6 * prefs)
        history = rng.multinomial(10, prefs) / 10.0  # what the device has seen the user click
        return ctr, history

    def load(self, partition_id: int, num_partitions: int) -> ClientData:
        if not 0 <= partition_id < num_partitions:
            raise FederationError(
                f"partition-id must be in 0..{num_partitions - 1}, got {partition_id}"
            )
        rng = np.random.default_rng([self.seed, 1, partition_id])
        ctr, hist = self._users(rng, self.users)
        user = np.repeat(np.arange(self.users), self.imps)
        cat = rng.integers(0, self.c, size=user.size)
        clicks = (rng.random(user.size) < ctr[user, cat]).astype(np.float32)
        t_ctr, t_hist = self._users(rng, self.users // 2)
        t_cat = rng.integers(0, self.c, size=(t_hist.shape[0], self.k))
        return ClientData(
            x_hist=hist[user],
            ad_cat=cat,
            clicks=clicks,
            test_hist=t_hist,
            test_ctr=np.take_along_axis(t_ctr, t_cat, axis=1),
            test_cat=t_cat,
        )

    def _logits(self, arrays: dict[str, np.ndarray], hist: np.ndarray, cat: np.ndarray):
        W, b = arrays["W"].astype(np.float64), float(arrays["b"][0])
        return (hist @ W)[np.arange(hist.shape[0])[:, None], cat[:, None]].ravel() + b

    def train(
        self,
        arrays: dict[str, np.ndarray],
        data: ClientData,
        *,
        epochs: int,
        lr: float,
        proximal_mu: float = 0.0,
        rng: np.random.Generator | int | None = None,
    ) -> tuple[dict[str, np.ndarray], int, dict[str, float]]:
        """Full-batch gradient descent on the log loss (+ FedProx's proximal term)."""
        W0, b0 = arrays["W"].astype(np.float64), float(arrays["b"][0])
        W, b = W0.copy(), b0
        m = data.clicks.size
        onehot = np.eye(self.c)[data.ad_cat]
        loss = 0.0
        for _ in range(max(1, epochs) * 10):
            z = np.einsum("mi,ij,mj->m", data.x_hist, W, onehot) + b
            p = expit(z)
            g = (p - data.clicks) / m
            loss = float(
                -np.mean(data.clicks * np.log(p + 1e-9) + (1 - data.clicks) * np.log(1 - p + 1e-9))
            )
            W -= lr * (data.x_hist.T @ (g[:, None] * onehot) + proximal_mu * (W - W0))
            b -= lr * (g.sum() + proximal_mu * (b - b0))
        return (
            {"W": W.astype(np.float32), "b": np.array([b], np.float32)},
            m,
            {"train_loss": loss},
        )

    def flip_labels(self, data: ClientData) -> ClientData:
        return replace(data, clicks=flip_labels(data.clicks, 2))

    def num_eval(self, data: ClientData) -> int:
        return int(data.test_ctr.shape[0])

    def full_model_bytes(self) -> int:
        """The global arrays are the whole model."""
        return int(sum(a.nbytes for a in self.initial_arrays().values()))

    def evaluate(self, arrays: dict[str, np.ndarray], data: ClientData) -> dict[str, float]:
        scores = self._logits(
            arrays, np.repeat(data.test_hist, self.k, axis=0), data.test_cat.ravel()
        ).reshape(data.test_cat.shape)
        from agents.metrics import ndcg_at_k, precision_at_k  # lazy: `agents` loads torch

        # Precision's relevant items: each query's 10 candidates of highest true CTR.
        top = np.argsort(-data.test_ctr, axis=1, kind="stable")[:, :10]
        relevant = np.zeros_like(data.test_ctr)
        np.put_along_axis(relevant, top, 1.0, axis=1)
        return {
            "ndcg@10": ndcg_at_k(scores, data.test_ctr, k=10),
            "precision@10": precision_at_k(scores, relevant, k=10),
        }


def make_task(cfg: dict[str, Any]) -> Task:
    """The task a checked run config names (``task``): one instance per process and config.

    The agent task holds the process's backbone and partitions, so it is built once and
    reused across the many messages one Ray actor or SuperNode process handles.
    """
    keys = ("task", "seed", "model", "lora-rank", "users-per-client", "positives-per-user")
    keys += ("batch-size", "dp-sgd-clipping-norm", "dp-sgd-noise-multiplier", "dp-delta")
    keys += ("max-length", "device-store", "dp", "lora-targets")
    return _cached_task(tuple((k, cfg[k]) for k in keys))


@lru_cache(maxsize=8)
def _cached_task(items: tuple[tuple[str, Any], ...]) -> Task:
    cfg = dict(items)
    if cfg["task"] == "click":
        return ClickTask(seed=int(cfg["seed"]))
    if cfg["task"] == "device":
        from .device_task import DeviceTask

        return DeviceTask(
            str(cfg["model"]),
            store=str(cfg["device-store"]),
            rank=int(cfg["lora-rank"]),
            max_length=int(cfg["max-length"]),
            batch_size=int(cfg["batch-size"]),
            clipping_norm=float(cfg["dp-sgd-clipping-norm"]),
            noise_multiplier=float(cfg["dp-sgd-noise-multiplier"]),
            delta=float(cfg["dp-delta"]),
            seed=int(cfg["seed"]),
            user_level=cfg["dp"] != "none",
        )
    if cfg["task"] == "instruct":
        from .instruct_task import InstructTask

        return InstructTask.from_settings(cfg)
    from .agent_task import AgentTask

    return AgentTask(
        str(cfg["model"]),
        rank=int(cfg["lora-rank"]),
        users_per_client=int(cfg["users-per-client"]),
        positives=int(cfg["positives-per-user"]),
        batch_size=int(cfg["batch-size"]),
        clipping_norm=float(cfg["dp-sgd-clipping-norm"]),
        noise_multiplier=float(cfg["dp-sgd-noise-multiplier"]),
        delta=float(cfg["dp-delta"]),
        seed=int(cfg["seed"]),
    )
