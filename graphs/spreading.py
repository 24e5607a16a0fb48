"""Gossip of model parameters (dicts of arrays) and of noised interest summaries (trends).

Example:
    >>> import networkx as nx, numpy as np
    >>> G = nx.complete_graph(3)
    >>> states = [{"w": np.full(2, float(i))} for i in range(3)]
    >>> averaged, trace = gossip_arrays(G, states, rounds=5)
    >>> averaged[0]["w"].tolist()
    [1.0, 1.0]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import networkx as nx
import numpy as np

from ._errors import GraphError
from .gossip import GossipTrace, gossip_average
from .noise import laplace_noise


def _flatten(states: Sequence[Mapping[str, np.ndarray]]) -> tuple[np.ndarray, list, np.dtype]:
    if not states:
        raise GraphError("states must hold one dict of arrays per node")
    keys = sorted(states[0])
    spec = [(k, np.shape(states[0][k])) for k in keys]
    dtype = np.result_type(*[np.asarray(states[0][k]).dtype for k in keys], np.float32)
    rows = []
    for i, state in enumerate(states):
        if sorted(state) != keys:
            raise GraphError(f"node {i} has keys {sorted(state)}, expected {keys}")
        for k, shape in spec:
            if np.shape(state[k]) != shape:
                raise GraphError(
                    f"node {i}: {k!r} has shape {np.shape(state[k])}, expected {shape}"
                )
        rows.append(np.concatenate([np.asarray(state[k], dtype=dtype).ravel() for k in keys]))
    return np.stack(rows), spec, dtype


def gossip_arrays(
    G: nx.Graph,
    states: Sequence[Mapping[str, np.ndarray]],
    rounds: int,
    **options: Any,
) -> tuple[list[dict[str, np.ndarray]], GossipTrace]:
    """Average per-node parameter dicts (e.g. LoRA adapters) by gossip.

    Args:
        G: social graph; ``states[i]`` belongs to node ``list(G)[i]``.
        states: one ``{name: array}`` per node, same keys and shapes everywhere.
        rounds: gossip rounds.
        **options: passed to ``gossip_average`` (protocol, churn, drop, noise, rng, ...);
            ``record`` defaults to ``"last"`` (parameters are large).

    Returns:
        (the averaged dicts per node, the trace; bytes count every parameter sent).
    """
    flat, spec, _ = _flatten(states)
    options.setdefault("record", "last")
    trace = gossip_average(G, flat, rounds, **options)
    out = []
    for row in trace.final:
        state, offset = {}, 0
        for k, shape in spec:
            size = int(np.prod(shape))
            state[k] = row[offset : offset + size].reshape(shape)
            offset += size
        out.append(state)
    return out, trace


def spread_trends(
    G: nx.Graph,
    interests: np.ndarray,
    rounds: int,
    *,
    epsilon: float | None = None,
    rng: np.random.Generator | int | None = None,
    **options: Any,
) -> GossipTrace:
    """Spread interest summaries (e.g. per-category shares of each user's events) by gossip.

    Each node's summary is a row of ``interests`` (n, categories) with entries in [0, 1]
    summing to at most 1 per row, so one user's change moves its row by at most 2 in L1.
    With ``epsilon``, every message leaves the node with Laplace noise of scale
    ``2 / epsilon`` (epsilon-local-DP per message; the budget adds up over the rounds a node
    sends, which the caller accounts for).

    Returns:
        The trace: ``final[i]`` is node i's view of the population's trends.
    """
    x = np.asarray(interests, dtype=np.float64)
    if x.ndim != 2 or (x < 0).any() or (x.sum(axis=1) > 1 + 1e-9).any():
        raise GraphError("interests must be (n, categories), >= 0, rows summing to <= 1")
    if epsilon is not None and not epsilon > 0:
        raise GraphError(f"epsilon must be > 0, got {epsilon}")
    noise = None if epsilon is None else laplace_noise(2.0 / epsilon)
    return gossip_average(G, x, rounds, noise=noise, rng=rng, **options)
