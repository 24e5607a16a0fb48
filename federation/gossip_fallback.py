"""Keep learning when the aggregator is down: clients average with neighbours by gossip.

``decentralized_rounds`` runs local training on every client each round; when the server is
reachable the round ends with FedAvg (the sample-weighted mean, sent back to all), otherwise
with ``gossip_rounds`` of gossip over the social graph (``graphs.gossip_arrays``: decentralized
SGD). It reports, per round, the mean local NDCG@10 and the consensus distance (how far the
clients' models are from their average), so a run with the server down can be compared with
one where it is up.

Example:
    >>> import networkx as nx
    >>> from federation.task import ClickTask
    >>> h = decentralized_rounds(ClickTask(seed=0), nx.cycle_graph(4), rounds=2,
    ...                          server_up=lambda r: False, rng=0)
    >>> len(h.ndcg), h.aggregation
    (2, ['gossip', 'gossip'])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import networkx as nx
import numpy as np

from graphs import gossip_arrays

from .accounting import array_bytes
from .task import Task


@dataclass
class FallbackHistory:
    """Per round: how it aggregated, mean local NDCG@10, consensus distance, bytes sent."""

    aggregation: list[str] = field(default_factory=list)
    ndcg: list[float] = field(default_factory=list)
    consensus: list[float] = field(default_factory=list)
    bytes_sent: list[int] = field(default_factory=list)


def _mean(states: list[dict[str, np.ndarray]], weights: np.ndarray) -> dict[str, np.ndarray]:
    w = weights / weights.sum()
    return {k: sum(wi * s[k] for wi, s in zip(w, states, strict=True)) for k in states[0]}


def _consensus(states: list[dict[str, np.ndarray]]) -> float:
    flat = np.stack([np.concatenate([np.ravel(s[k]) for k in sorted(s)]) for s in states])
    return float(np.linalg.norm(flat - flat.mean(axis=0)) / np.sqrt(len(states)))


def decentralized_rounds(
    task: Task,
    G: nx.Graph,
    rounds: int,
    *,
    server_up: Callable[[int], bool],
    gossip_rounds: int = 3,
    epochs: int = 1,
    lr: float = 2.0,
    churn: float = 0.0,
    drop: float = 0.0,
    rng: np.random.Generator | int | None = None,
) -> FallbackHistory:
    """Train ``len(G)`` clients (client i = partition i = node ``list(G)[i]``) for ``rounds``."""
    n = G.number_of_nodes()
    gen = np.random.default_rng(rng)
    data = [task.load(i, n) for i in range(n)]
    states = [task.initial_arrays() for _ in range(n)]
    history = FallbackHistory()
    for r in range(rounds):
        trained = [
            task.train(s, d, epochs=epochs, lr=lr, rng=gen)
            for s, d in zip(states, data, strict=True)
        ]
        states = [t[0] for t in trained]
        payload = array_bytes(states[0])
        if server_up(r):
            mean = _mean(states, np.array([t[1] for t in trained], dtype=float))
            states = [dict(mean) for _ in range(n)]
            history.aggregation.append("server")
            history.bytes_sent.append(2 * n * payload)  # up and down
        else:
            states, trace = gossip_arrays(G, states, gossip_rounds, churn=churn, drop=drop, rng=gen)
            history.aggregation.append("gossip")
            history.bytes_sent.append(int(trace.bytes.sum()))
        history.ndcg.append(
            float(
                np.mean([task.evaluate(s, d)["ndcg@10"] for s, d in zip(states, data, strict=True)])
            )
        )
        history.consensus.append(_consensus(states))
    return history
