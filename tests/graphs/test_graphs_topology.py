"""Topology: edge arrays as networkx lists them, a snapshot, the same gossip as the graph;
the fast synchronous paths against dense reference loops; noise hooks that return NaN/inf."""

from __future__ import annotations

import re

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graphs import GraphError, gaussian_noise, gossip_average, metropolis_weights
from graphs.topology import Topology, edge_arrays


@st.composite
def graphs(draw, directed=False):
    n = draw(st.integers(1, 30))
    p = draw(st.floats(0.0, 1.0))
    seed = draw(st.integers(0, 10_000))
    G = nx.gnp_random_graph(n, p, seed=seed, directed=directed)
    if draw(st.booleans()):  # labels that are not 0..n-1, in a scrambled order
        order = np.random.default_rng(seed).permutation(n)
        G = nx.relabel_nodes(G, {v: f"u{order[v]}" for v in G})
    if n and draw(st.booleans()):
        first = next(iter(G))
        G.add_edge(first, first)  # a self-loop, which gossip ignores
    return G


def _by_edge_list(G):
    """The reference: one tuple per edge from ``G.edges()``, self-loops dropped."""
    index = {v: i for i, v in enumerate(G)}
    pairs = [(index[a], index[b]) for a, b in G.edges() if a != b]
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


@given(st.one_of(graphs(), graphs(directed=True)))
def test_edge_arrays_list_the_edges_as_networkx_does(G):
    nodes, src, dst = edge_arrays(G)
    assert nodes == list(G)
    np.testing.assert_array_equal(np.stack([src, dst], axis=1), _by_edge_list(G))


def test_topology_is_a_snapshot_and_owns_its_matrices():
    G = nx.path_graph(4)
    topo = Topology(G)
    assert topo.metropolis(np.float32) is topo.metropolis(np.float32)
    assert topo.metropolis(np.float32).dtype == np.float32
    G.add_edge(0, 3)
    assert topo.src.size == 3 and Topology(G).src.size == 4  # a new one sees the change
    np.testing.assert_allclose(Topology(G).metropolis().toarray(), metropolis_weights(G))


@settings(max_examples=30)
@given(
    graphs(),
    st.sampled_from(["sync", "pairwise", "push_sum"]),
    st.sampled_from([0.0, 0.3]),
    st.integers(0, 100),
)
def test_a_topology_gossips_exactly_as_its_graph(G, protocol, churn, seed):
    x = np.random.default_rng(seed).normal(size=(len(G), 2))
    kw = {"protocol": protocol, "churn": churn, "rng": seed}
    if len(G) == 0:
        return
    a = gossip_average(G, x, 15, **kw)
    b = gossip_average(Topology(G), x, 15, **kw)
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(a.errors, b.errors)
    assert a.union_connected == b.union_connected


def _dense_sync(G, x, rounds, hook=None, seed=0):
    """Reference: ``x <- W x`` with dense Metropolis weights; with a hook, a node keeps
    ``W_ii x_i`` and receives ``W_ij hook(x)_j``. Returns the values of every round."""
    W = metropolis_weights(G)
    diag = np.diag(W).copy()
    off = W - np.diag(diag)
    rng = np.random.default_rng(seed)
    out = [x]
    for _ in range(rounds):
        sent = x if hook is None else hook(x, rng)
        x = diag[:, None] * x + off @ sent
        out.append(x)
    return np.stack(out)


@settings(max_examples=30)
@given(
    graphs(),
    st.integers(1, 40),
    st.integers(1, 5),
    st.sampled_from([None, 0.3]),
    st.integers(0, 100),
)
def test_static_sync_matches_a_dense_loop(G, rounds, d, sigma, seed):
    if len(G) == 0:
        return
    x = np.random.default_rng(seed).normal(size=(len(G), d)) + 5.0
    hook = None if sigma is None else gaussian_noise(sigma)
    trace = gossip_average(G, x, rounds, noise=hook, rng=seed)
    want = _dense_sync(G, x, rounds, hook, seed)
    np.testing.assert_allclose(trace.values, want, atol=1e-10)
    errors = np.sqrt(((want - trace.mean) ** 2).sum(axis=(1, 2)))
    np.testing.assert_allclose(trace.errors, errors, rtol=1e-9, atol=1e-10)


def test_wide_rows_run_in_column_blocks_with_the_same_result():
    G = nx.watts_strogatz_graph(100, 4, 0.2, seed=1)
    x = np.random.default_rng(0).normal(size=(100, 6000))  # 48 KB rows: 3 blocks
    trace = gossip_average(G, x, 4, record="last")
    want = _dense_sync(G, x, 4)
    np.testing.assert_allclose(trace.final, want[-1], atol=1e-12)
    errors = np.sqrt(((want - x.mean(0)) ** 2).sum(axis=(1, 2)))
    np.testing.assert_allclose(trace.errors, errors, rtol=1e-10)


@pytest.mark.parametrize("protocol", ["sync", "pairwise"])
@pytest.mark.parametrize(
    ("hook", "name"),
    [
        (gaussian_noise(float("inf")), "gaussian_noise(inf)"),
        (lambda v, rng: np.where(v > 1.5, np.nan, v), "<lambda>"),
    ],
)
def test_a_hook_returning_nan_or_inf_is_named(protocol, hook, name):
    with pytest.raises(GraphError, match=re.escape(f"noise hook {name} returned NaN or inf")):
        gossip_average(nx.path_graph(4), np.arange(4.0), 3, protocol=protocol, noise=hook, rng=0)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@given(st.integers(0, 5), st.integers(0, 2))
def test_non_finite_values_are_refused(bad, row, col):
    x = np.ones((6, 3))
    x[row, col] = bad
    with pytest.raises(GraphError, match="values must be finite"):
        gossip_average(nx.cycle_graph(6), x, 2)
    x[(row + 1) % 6, col] = -x[row, col]  # inf and -inf in one column: their mean is NaN
    with pytest.raises(GraphError, match="values must be finite"):
        gossip_average(nx.cycle_graph(6), x, 2)
