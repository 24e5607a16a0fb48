"""Subgraphs used as gossip groups and secure-aggregation cohorts.

Example:
    >>> import networkx as nx
    >>> groups = communities(nx.karate_club_graph(), rng=0)
    >>> sum(len(g) for g in groups)
    34
"""

from __future__ import annotations

import networkx as nx
import numpy as np

from ._errors import GraphError
from .social import SeedLike, _seed


def communities(G: nx.Graph, *, resolution: float = 1.0, rng: SeedLike = None) -> list[set]:
    """Louvain communities (networkx), largest first; a partition of the nodes."""
    found = nx.community.louvain_communities(G, resolution=resolution, seed=_seed(rng))
    return sorted((set(c) for c in found), key=lambda c: (-len(c), min(map(str, c))))


def ego_groups(G: nx.Graph, *, radius: int = 1) -> dict:
    """Each node's ego network (itself and everyone within ``radius`` hops), as node sets."""
    if radius < 0:
        raise GraphError(f"radius must be >= 0, got {radius}")
    return {v: set(nx.ego_graph(G, v, radius=radius)) for v in G}


def k_core_nodes(G: nx.Graph, k: int) -> set:
    """Nodes of the k-core: the largest subgraph where every node has degree >= k."""
    if k < 0:
        raise GraphError(f"k must be >= 0, got {k}")
    H = nx.Graph(G)
    H.remove_edges_from(nx.selfloop_edges(H))
    return set(nx.k_core(H, k))


def homophily(G: nx.Graph, attribute: str = "community") -> float:
    """Attribute assortativity in [-1, 1]: > 0 when ties form mostly within groups."""
    if not all(attribute in G.nodes[v] for v in G):
        raise GraphError(f"every node needs the attribute {attribute!r}")
    return float(nx.attribute_assortativity_coefficient(G, attribute))


def membership(groups: list[set], nodes: list) -> np.ndarray:
    """(n,) group index of each node in ``nodes`` order (-1 for nodes in no group)."""
    index = {v: g for g, members in enumerate(groups) for v in members}
    return np.array([index.get(v, -1) for v in nodes], dtype=np.int64)
