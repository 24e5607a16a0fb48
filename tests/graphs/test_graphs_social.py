"""Social graphs, generators, co-rating graphs, communities and spectral helpers."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

from graphs import (
    GraphError,
    barabasi_albert,
    co_rating_graph,
    communities,
    ego_groups,
    homophily,
    k_core_nodes,
    membership,
    metropolis_matrix,
    metropolis_weights,
    powerlaw_cluster,
    predicted_rounds,
    slem,
    social_graph,
    spectral_gap,
    stochastic_block,
    torus,
    watts_strogatz,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("name", "nodes", "edges"),
    [("karate", 34, 78), ("les_miserables", 77, 254), ("florentine", 15, 20)],
)
def test_real_graphs(name, nodes, edges):
    G = social_graph(name)
    assert (G.number_of_nodes(), G.number_of_edges()) == (nodes, edges)
    assert sorted(G) == list(range(nodes))


def test_unknown_graph_name():
    with pytest.raises(GraphError, match="allowed: florentine, karate, les_miserables"):
        social_graph("facebook")


@pytest.mark.parametrize(
    "make",
    [
        lambda r: stochastic_block([20, 20], 0.5, 0.02, rng=r),
        lambda r: watts_strogatz(40, 4, 0.1, rng=r),
        lambda r: barabasi_albert(40, 2, rng=r),
        lambda r: powerlaw_cluster(40, 2, 0.3, rng=r),
    ],
)
def test_generators_are_seeded(make):
    a, b, c = make(1), make(1), make(2)
    assert sorted(a.edges) == sorted(b.edges)
    assert sorted(a.edges) != sorted(c.edges)
    from_generator = [sorted(make(np.random.default_rng(0)).edges) for _ in range(2)]
    assert from_generator[0] == from_generator[1]  # a seeded Generator works too


def test_block_model_has_homophily():
    G = stochastic_block([30, 30], 0.4, 0.01, rng=0)
    assert homophily(G) > 0.8
    assert homophily(social_graph("karate")) > 0.5  # the club split follows the ties


def test_co_rating_graph():
    users = np.array([0, 0, 0, 1, 1, 1, 2, 2, 3])
    items = np.array([1, 2, 3, 1, 2, 3, 1, 9, 7])
    G = co_rating_graph(users, items, min_common=2, top_k=None, n_users=5)
    assert sorted(G.nodes) == [0, 1, 2, 3, 4]
    assert sorted(G.edges) == [(0, 1)]
    assert G.edges[0, 1]["weight"] == pytest.approx(1.0)
    assert G.edges[0, 1]["common"] == 3
    G1 = co_rating_graph(users, items, min_common=1, top_k=None)
    assert G1.edges[0, 2]["weight"] == pytest.approx(1 / math.sqrt(3 * 2))
    with pytest.raises(GraphError, match="equal length"):
        co_rating_graph(users, items[:-1])


def test_co_rating_top_k_limits_degree():
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 30, 600), rng.integers(0, 20, 600)
    G = co_rating_graph(users, items, min_common=1, top_k=3)
    # each kept edge was among the top 3 of at least one endpoint when added
    assert max(dict(G.degree).values()) < 29


def test_communities_partition_the_nodes():
    G = stochastic_block([15, 15, 15], 0.6, 0.01, rng=3)
    groups = communities(G, rng=0)
    assert sorted(v for g in groups for v in g) == sorted(G)
    labels = membership(groups, list(G))
    planted = np.array([G.nodes[v]["community"] for v in G])
    # Louvain recovers the planted blocks (up to relabelling)
    assert len({(a, b) for a, b in zip(labels, planted, strict=True)}) == 3


def test_ego_groups_and_k_core():
    G = social_graph("karate")
    ego = ego_groups(G, radius=1)
    assert ego[0] == {0, *G[0]}
    core = k_core_nodes(G, 4)
    assert core and all(sum(1 for u in G[v] if u in core) >= 4 for v in core)
    with pytest.raises(GraphError):
        k_core_nodes(G, -1)


def test_spectral_helpers():
    assert slem(metropolis_weights(nx.complete_graph(5))) == pytest.approx(0.0, abs=1e-12)
    ring = metropolis_weights(nx.cycle_graph(10))
    assert slem(ring) == pytest.approx(1 / 3 + 2 / 3 * math.cos(2 * math.pi / 10))
    assert spectral_gap(ring) == pytest.approx(1 - slem(ring))
    two = nx.Graph([(0, 1), (2, 3)])
    assert predicted_rounds(metropolis_weights(two), 1e-6) == math.inf
    with pytest.raises(GraphError, match="tol"):
        predicted_rounds(ring, 2.0)


def test_sparse_matrix_equals_dense_weights():
    G = social_graph("les_miserables")
    np.testing.assert_array_equal(metropolis_matrix(G).toarray(), metropolis_weights(G))


def test_import_pulls_no_torch():
    code = "import sys, graphs; print(sorted(m for m in sys.modules if m.startswith('torch')))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "[]"


def test_sparse_and_dense_agree_on_large_graphs():
    G = torus(50)  # 2,500 nodes: the sparse eigen-solver path
    W = metropolis_matrix(G)
    expected = 1 - 0.4 * (1 - math.cos(2 * math.pi / 50))  # 4-regular Metropolis: 1/5 weights
    assert slem(W) == pytest.approx(expected, rel=1e-8)
