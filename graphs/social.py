"""Social graphs: the real small graphs networkx ships, seeded generators, co-rating graphs.

Every generator returns an undirected ``networkx.Graph`` with integer nodes ``0..n-1`` and,
where the model has groups, a ``"community"`` node attribute (the planted block), so
homophily can be measured with ``networkx.attribute_assortativity_coefficient``.

Example:
    >>> G = social_graph("karate")
    >>> G.number_of_nodes(), G.number_of_edges()
    (34, 78)
"""

from __future__ import annotations

from collections.abc import Callable

import networkx as nx
import numpy as np
from scipy import sparse

from ._errors import GraphError

SeedLike = int | np.random.Generator | None


def _seed(rng: SeedLike) -> int | None:
    """networkx wants an int seed (or RandomState); derive one from a Generator."""
    if isinstance(rng, np.random.Generator):
        return int(rng.integers(2**31 - 1))
    return rng


def _integer_nodes(G: nx.Graph, label: str = "name") -> nx.Graph:
    """Relabel to 0..n-1 in sorted-name order, keeping the old name as an attribute."""
    names = sorted(G.nodes, key=str)
    H = nx.relabel_nodes(G, {v: i for i, v in enumerate(names)})
    nx.set_node_attributes(H, dict(enumerate(names)), label)
    return nx.Graph(H)


def karate_club() -> nx.Graph:
    """Zachary's karate club (34 members, 78 ties); ``"community"`` = the club after the split."""
    G = nx.karate_club_graph()
    clubs = {v: int(G.nodes[v]["club"] != "Mr. Hi") for v in G}
    nx.set_node_attributes(G, clubs, "community")
    return nx.Graph(G)


def les_miserables() -> nx.Graph:
    """Co-appearance network of the characters of Les Misérables (77 nodes, weighted)."""
    return _integer_nodes(nx.les_miserables_graph())


def florentine_families() -> nx.Graph:
    """Marriage ties between Renaissance Florentine families (15 nodes)."""
    return _integer_nodes(nx.florentine_families_graph())


def stochastic_block(
    sizes: list[int], p_in: float, p_out: float, *, rng: SeedLike = None
) -> nx.Graph:
    """Stochastic block model: communities with edge probability ``p_in`` inside, ``p_out`` across.

    Homophily grows with ``p_in / p_out``.
    """
    if not (0 <= p_out <= 1 and 0 <= p_in <= 1):
        raise GraphError(f"p_in and p_out must be probabilities in [0, 1], got {p_in}, {p_out}")
    k = len(sizes)
    probs = np.full((k, k), p_out)
    np.fill_diagonal(probs, p_in)
    G = nx.stochastic_block_model(sizes, probs.tolist(), seed=_seed(rng))
    blocks = {v: G.nodes[v]["block"] for v in G}
    nx.set_node_attributes(G, blocks, "community")
    return nx.Graph(G)


def watts_strogatz(n: int, k: int, p: float, *, rng: SeedLike = None) -> nx.Graph:
    """Connected small-world graph: a ring of degree ``k`` with rewiring probability ``p``."""
    return nx.connected_watts_strogatz_graph(n, k, p, seed=_seed(rng))


def barabasi_albert(n: int, m: int, *, rng: SeedLike = None) -> nx.Graph:
    """Preferential attachment: each new node links to ``m`` existing ones (scale-free)."""
    return nx.barabasi_albert_graph(n, m, seed=_seed(rng))


def powerlaw_cluster(n: int, m: int, p: float, *, rng: SeedLike = None) -> nx.Graph:
    """Holme–Kim: preferential attachment plus triangle closure with probability ``p``."""
    return nx.powerlaw_cluster_graph(n, m, p, seed=_seed(rng))


def torus(side: int) -> nx.Graph:
    """2-D periodic grid of ``side x side`` nodes (degree 4), relabelled to integers."""
    return nx.convert_node_labels_to_integers(nx.grid_2d_graph(side, side, periodic=True))


def co_rating_graph(
    users: np.ndarray,
    items: np.ndarray,
    *,
    min_common: int = 2,
    top_k: int | None = 10,
    n_users: int | None = None,
) -> nx.Graph:
    """Users linked by the items they both rated (e.g. MovieLens), weighted by cosine similarity.

    Args:
        users: (r,) int, user of each rating.
        items: (r,) int, item of each rating.
        min_common: least number of shared items for an edge.
        top_k: keep each user's ``top_k`` most similar neighbours (None: all).
        n_users: number of users (default ``users.max() + 1``); users without edges stay nodes.

    Returns:
        Graph on users ``0..n_users-1`` with ``weight`` (cosine) and ``common`` (count) on edges.

    Example:
        >>> G = co_rating_graph(np.array([0, 0, 1, 1, 2]), np.array([5, 6, 5, 6, 7]))
        >>> sorted(G.edges)
        [(0, 1)]
    """
    u = np.asarray(users, dtype=np.int64)
    i = np.asarray(items, dtype=np.int64)
    if u.shape != i.shape or u.ndim != 1:
        raise GraphError(f"users and items must be 1-D of equal length, got {u.shape}, {i.shape}")
    if u.size and (u.min() < 0 or i.min() < 0):
        raise GraphError("users and items must be non-negative integer ids")
    n = int(n_users if n_users is not None else (u.max() + 1 if u.size else 0))
    R = sparse.csr_matrix((np.ones(u.size), (u, i)), shape=(n, int(i.max()) + 1 if i.size else 0))
    R.data[:] = 1.0  # duplicate ratings count once
    common = (R @ R.T).tocoo()
    norms = np.sqrt(np.asarray(R.sum(axis=1)).ravel())
    keep = (common.row < common.col) & (common.data >= min_common)
    rows, cols, counts = common.row[keep], common.col[keep], common.data[keep]
    cosine = counts / (norms[rows] * norms[cols])
    G = nx.Graph()
    G.add_nodes_from(range(n))
    if top_k is None:
        G.add_weighted_edges_from(zip(rows, cols, cosine, strict=True))
    else:
        order = np.argsort(-cosine, kind="stable")
        degree = np.zeros(n, dtype=np.int64)
        for e in order:
            a, b = rows[e], cols[e]
            if degree[a] < top_k or degree[b] < top_k:
                G.add_edge(int(a), int(b), weight=float(cosine[e]))
                degree[a] += 1
                degree[b] += 1
    for a, b in G.edges:
        G.edges[a, b]["common"] = len(set(R[a].indices) & set(R[b].indices))
    return G


_NAMED: dict[str, Callable[[], nx.Graph]] = {
    "karate": karate_club,
    "les_miserables": les_miserables,
    "florentine": florentine_families,
}


def social_graph(name: str) -> nx.Graph:
    """A real graph shipped with networkx: ``karate``, ``les_miserables`` or ``florentine``."""
    try:
        return _NAMED[name]()
    except KeyError:
        raise GraphError(f"unknown graph {name!r}; allowed: {', '.join(sorted(_NAMED))}") from None
