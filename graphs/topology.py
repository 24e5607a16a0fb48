"""A graph's gossip topology, extracted once: node order, edge arrays, mixing matrices.

``gossip_average`` needs a graph's nodes in ``list(G)`` order, its edges as index arrays and
(for synchronous gossip) its Metropolis matrix. Building those walks every edge in Python;
a caller that gossips over the same graph many times (the economy, every few steps) builds a
:class:`Topology` once and passes it instead of the graph. The topology is a snapshot: it
does not follow later changes to the graph (build a new one after mutating it), and it
owns what it derives from the edges (matrices per dtype, connectivity), so nothing is cached
at module level and nothing goes stale behind the caller's back.

A caller that passes the graph itself gets :func:`topology_of`'s topology: kept in the graph's
own cache, ``G.__networkx_cache__``, which networkx empties on every change made through the
graph's methods (``add_edge``, ``remove_node``, ``clear``, ...), and checked against the node
and adjacency counts before use. Views (``G.subgraph(...)``, ``reverse(copy=False)``, ...)
change with the graph they view without their own cache being emptied: they are never cached.

Example:
    >>> import networkx as nx, numpy as np
    >>> from graphs import gossip_average
    >>> topo = Topology(nx.cycle_graph(4))
    >>> topo.n, topo.src.tolist(), topo.dst.tolist()
    (4, [0, 0, 1, 2], [1, 3, 2, 3])
    >>> trace = gossip_average(topo, np.arange(4.0), rounds=50, record="last")
    >>> round(float(trace.final[0]), 6)
    1.5
"""

from __future__ import annotations

from functools import cached_property
from itertools import chain

import networkx as nx
import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components


def edge_arrays(G: nx.Graph) -> tuple[list, np.ndarray, np.ndarray]:
    """Nodes in ``list(G)`` order and the (m,) endpoint indices of each edge, no self-loops.

    Undirected edges come once each, as ``(i, j)`` with ``i < j``, in ``G.edges()`` order;
    directed edges as ``(tail, head)``. Parallel edges of a multigraph count once. The
    neighbour lists are read at C speed (``map`` over the adjacency), not one tuple per edge.
    """
    nodes = list(G)
    index = dict(zip(nodes, range(len(nodes)), strict=True))
    adj = G.adj
    degree = np.fromiter(map(len, adj.values()), np.int64, len(nodes))
    heads = np.fromiter(
        chain.from_iterable(map(index.__getitem__, nbrs) for nbrs in adj.values()),
        np.int64,
        int(degree.sum()),
    )
    tails = np.repeat(np.arange(len(nodes), dtype=np.int64), degree)
    keep = tails != heads if G.is_directed() else tails < heads
    return nodes, tails[keep], heads[keep]


def metropolis_edge_weights(n: int, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """(m,) Metropolis weight ``1 / (1 + max(d_i, d_j))`` of each edge ``(src[e], dst[e])``."""
    degree = np.bincount(np.concatenate([src, dst]), minlength=n)
    return 1.0 / (1.0 + np.maximum(degree[src], degree[dst]))


def metropolis_csr(n: int, src: np.ndarray, dst: np.ndarray, dtype: np.dtype) -> sparse.csr_matrix:
    """(n, n) Metropolis matrix of the undirected edges ``(src, dst)``, in ``dtype``.

    Off-diagonal weights on both directions of each edge, ``1 - row sum`` on the diagonal
    (computed in float64, then cast).
    """
    w = metropolis_edge_weights(n, src, dst)
    diag = 1.0 - np.bincount(src, w, minlength=n) - np.bincount(dst, w, minlength=n)
    rows = np.concatenate([src, dst, np.arange(n)])
    cols = np.concatenate([dst, src, np.arange(n)])
    values = np.concatenate([w, w, diag]).astype(dtype)
    return sparse.csr_matrix((values, (rows, cols)), shape=(n, n))


class Topology:
    """What gossip needs from a graph, extracted once (a snapshot; see the module doc).

    Attributes:
        nodes: the nodes in ``list(G)`` order (row ``i`` of gossip values is ``nodes[i]``).
        index: node -> row.
        src, dst: (m,) int64 endpoints of each edge (undirected: once each, ``src < dst``).
        directed: whether the graph was a digraph.
    """

    def __init__(self, G: nx.Graph) -> None:
        self.nodes, self.src, self.dst = edge_arrays(G)
        self.src.flags.writeable = self.dst.flags.writeable = False  # a topology may be shared
        self.index = dict(zip(self.nodes, range(len(self.nodes)), strict=True))
        self.directed = G.is_directed()
        self._metropolis: dict[np.dtype, sparse.csr_matrix] = {}

    @property
    def n(self) -> int:
        """Number of nodes."""
        return len(self.nodes)

    def metropolis(self, dtype: np.dtype | type = np.float64) -> sparse.csr_matrix:
        """The (n, n) Metropolis matrix in ``dtype``, built once per dtype."""
        key = np.dtype(dtype)
        if key not in self._metropolis:
            self._metropolis[key] = metropolis_csr(self.n, self.src, self.dst, key)
        return self._metropolis[key]

    @cached_property
    def connected(self) -> bool:
        """Whether all edges connect every node (strongly, for a digraph)."""
        return connects(self.n, self.src, self.dst, strong=self.directed)


def connects(n: int, src: np.ndarray, dst: np.ndarray, *, strong: bool = False) -> bool:
    """Whether the edges ``(src, dst)`` connect all ``n`` nodes (strongly if ``strong``)."""
    adj = sparse.coo_matrix((np.ones(src.size), (src, dst)), shape=(n, n))
    k, _ = connected_components(adj, directed=strong, connection="strong")
    return k == 1


_CACHE_KEY = "graphs.topology"  # the entry in G.__networkx_cache__: (stamp, Topology)


def _stamp(G: nx.Graph) -> tuple[int, int]:
    """Nodes and adjacency entries: a change that bypasses networkx's methods (and so its
    cache clearing) is caught when it changes either."""
    adjacency = getattr(G, "_adj", None)  # networkx's own dict of dicts: len at C speed
    return len(G), sum(map(len, (G.adj if adjacency is None else adjacency).values()))


def topology_of(G: nx.Graph) -> Topology:
    """``Topology(G)``, built once and kept with ``G`` until ``G`` changes.

    The topology lives in ``G.__networkx_cache__`` (owned by the graph, emptied by networkx on
    every mutation through the graph's methods) and is rebuilt when the graph's node or
    adjacency counts differ from when it was built. Graph views and graphs without a networkx
    cache get a new topology on every call.

    Example:
        >>> G = nx.path_graph(3)
        >>> topology_of(G) is topology_of(G)
        True
        >>> G.add_edge(0, 2)
        >>> topology_of(G).src.size
        3
    """
    cache = getattr(G, "__networkx_cache__", None)
    if not isinstance(cache, dict) or hasattr(G, "_graph"):  # a view: its base may change
        return Topology(G)
    stamp = _stamp(G)
    kept = cache.get(_CACHE_KEY)
    if kept is not None and kept[0] == stamp:
        return kept[1]
    topo = Topology(G)
    cache[_CACHE_KEY] = (stamp, topo)
    return topo


def as_topology(G: nx.Graph | Topology) -> Topology:
    """``G`` itself if it is a :class:`Topology`, else the graph's (:func:`topology_of`)."""
    return G if isinstance(G, Topology) else topology_of(G)
