"""The topology ``gossip_average`` reads off a graph is built once per graph and rebuilt after
every change: gossip over a graph equals gossip over a topology built fresh from it, whatever
was done to the graph in between."""

from __future__ import annotations

import contextlib

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import graphs.topology as topology
from graphs import Topology, gossip_average


@pytest.fixture
def builds(monkeypatch):
    """Counts the walks over a graph's edges (``edge_arrays`` calls)."""
    calls = []
    original = topology.edge_arrays

    def counted(G):
        calls.append(G)
        return original(G)

    monkeypatch.setattr(topology, "edge_arrays", counted)
    return calls


def _gossip(G, seed=0):
    """Pairwise gossip (edge order matters for its matchings) of a fixed start."""
    n = G.n if isinstance(G, Topology) else len(G)
    x = np.random.default_rng(seed).random((n, 2))
    trace = gossip_average(G, x, 3, protocol="pairwise", rng=seed, record="last")
    return trace.final, trace.messages


def _same_as_fresh(G):
    """Gossip over ``G`` equals gossip over a topology built from it now."""
    got, want = _gossip(G), _gossip(Topology(G))
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


def test_a_graph_s_edges_are_read_once_for_many_gossip_calls(builds):
    G = nx.watts_strogatz_graph(60, 4, 0.2, seed=1)
    for seed in range(4):
        _gossip(G, seed)
    assert len(builds) == 1
    assert topology.topology_of(G) is topology.topology_of(G)


MUTATIONS = {
    "add_edge": lambda G, u, v: G.add_edge(u, v),
    "remove_edge": lambda G, u, v: G.has_edge(u, v) and G.remove_edge(u, v),
    "add_node": lambda G, u, v: G.add_node(f"new{u}-{v}"),
    "remove_node": lambda G, u, v: len(G) > 2 and G.remove_node(u),
    "add_edges_from": lambda G, u, v: G.add_edges_from([(u, v), (v, f"x{u}")]),
    "remove_edges_from": lambda G, u, v: G.remove_edges_from(list(G.edges(u))),
    "update": lambda G, u, v: G.update(edges=[(u, f"y{v}")]),
    "relabel_in_place": lambda G, u, v: nx.relabel_nodes(G, {u: f"r{u}"}, copy=False),
    "rewire": lambda G, u, v: (
        nx.double_edge_swap(G, nswap=1, max_tries=100, seed=len(G))
        if G.number_of_edges() >= 4
        else None
    ),
}


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(4, 20),
    seed=st.integers(0, 1_000),
    steps=st.lists(
        st.tuples(st.sampled_from(sorted(MUTATIONS)), st.integers(0, 50), st.integers(0, 50)),
        min_size=1,
        max_size=6,
    ),
)
def test_every_change_to_the_graph_is_seen_by_the_next_gossip(n, seed, steps):
    G = nx.gnp_random_graph(n, 0.4, seed=seed)
    _same_as_fresh(G)  # the graph's topology is now kept with it
    for name, a, b in steps:
        nodes = list(G)
        u, v = nodes[a % len(nodes)], nodes[b % len(nodes)]
        if u == v:
            continue
        with contextlib.suppress(nx.NetworkXError):  # e.g. a swap found no pair: no change
            MUTATIONS[name](G, u, v)
        _same_as_fresh(G)


def test_a_view_follows_its_graph(builds):
    G = nx.cycle_graph(8)
    H = G.subgraph(range(6))  # a view: G's changes show through it
    _same_as_fresh(H)
    G.add_edge(0, 3)
    _same_as_fresh(H)
    assert topology.topology_of(H) is not topology.topology_of(H)  # never kept


def test_a_change_behind_networkx_s_back_is_caught_by_the_counts():
    G = nx.path_graph(5)
    _same_as_fresh(G)
    G._adj[0][4] = G._adj[4][0] = {}  # no method, so the networkx cache is not emptied
    _same_as_fresh(G)
    assert topology.topology_of(G).src.size == 5


def test_a_kept_topology_cannot_be_changed_through_its_arrays():
    topo = topology.topology_of(nx.path_graph(4))
    with pytest.raises(ValueError, match="read-only"):
        topo.src[0] = 3
