"""Gossip protocols: mean preservation, contraction = SLEM, push-sum, failures, reports."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graphs import (
    GraphError,
    gaussian_noise,
    gossip_arrays,
    gossip_average,
    metropolis_weights,
    predicted_rounds,
    predicted_rounds_for,
    slem,
    spread_trends,
    torus,
)


@st.composite
def connected_graphs(draw):
    n = draw(st.integers(2, 25))
    p = draw(st.floats(0.05, 1.0))
    seed = draw(st.integers(0, 10_000))
    G = nx.gnp_random_graph(n, p, seed=seed)
    nx.add_path(G, range(n))  # connected whatever the draw
    return G


@given(connected_graphs())
def test_metropolis_weights_symmetric_doubly_stochastic(G):
    W = metropolis_weights(G)
    np.testing.assert_allclose(W, W.T, atol=0)
    np.testing.assert_allclose(W.sum(axis=0), 1.0, atol=1e-12)
    np.testing.assert_allclose(W.sum(axis=1), 1.0, atol=1e-12)
    assert (W >= 0).all()
    A = nx.to_numpy_array(G, nodelist=list(G)) > 0
    assert not (W[~A & ~np.eye(len(G), dtype=bool)]).any()  # only along edges


@settings(max_examples=30)
@given(
    connected_graphs(),
    st.sampled_from(["sync", "pairwise"]),
    st.floats(0.0, 0.5),
    st.floats(0.0, 0.5),
    st.integers(0, 1000),
)
def test_mean_preserved_to_1e12(G, protocol, churn, drop, seed):
    x = np.random.default_rng(seed).normal(size=(len(G), 3))
    trace = gossip_average(G, x, 30, protocol=protocol, churn=churn, drop=drop, rng=seed)
    np.testing.assert_allclose(
        trace.values.mean(axis=1), np.broadcast_to(x.mean(0), (31, 3)), atol=1e-12
    )


@pytest.mark.parametrize(
    "G",
    [nx.cycle_graph(12), nx.star_graph(9), torus(5), nx.complete_graph(7), nx.path_graph(8)],
    ids=["ring", "star", "torus", "complete", "path"],
)
def test_measured_contraction_equals_slem(G):
    W = metropolis_weights(G)
    lam = slem(W)
    x0 = np.random.default_rng(0).normal(size=len(G))
    if lam < 1e-12:  # complete graph: exact average after one round
        trace = gossip_average(G, x0, 1)
        assert trace.relative_errors[1] < 1e-12
        return
    trace = gossip_average(G, x0, 400, record="errors")
    rel = trace.relative_errors
    usable = np.flatnonzero(rel > 1e-9)
    t0, t1 = usable[len(usable) // 2], usable[-1]
    measured = (rel[t1] / rel[t0]) ** (1.0 / (t1 - t0))
    assert measured == pytest.approx(lam, rel=1e-4)


@pytest.mark.parametrize("G", [nx.cycle_graph(20), nx.karate_club_graph(), torus(6)])
def test_predicted_rounds(G):
    W = metropolis_weights(G)
    x0 = np.random.default_rng(1).normal(size=(len(G), 2))
    trace = gossip_average(G, x0, 3000, record="errors")
    measured = trace.rounds_to(1e-6)
    assert measured <= predicted_rounds(W, 1e-6)  # the SLEM bound holds for every start
    assert abs(measured - predicted_rounds_for(W, x0, 1e-6)) <= 1


@st.composite
def strongly_connected_digraphs(draw):
    n = draw(st.integers(2, 15))
    D = nx.DiGraph()
    nx.add_cycle(D, range(n))
    extra = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=20))
    D.add_edges_from((a, b) for a, b in extra if a != b)
    return D


@settings(max_examples=40)
@given(strongly_connected_digraphs(), st.integers(0, 1000))
def test_push_sum_converges_to_exact_mean(D, seed):
    x = np.random.default_rng(seed).normal(size=len(D))
    trace = gossip_average(D, x, 3000, protocol="push_sum", record="last")
    np.testing.assert_allclose(trace.final, x.mean(), atol=1e-9)


def test_push_sum_with_churn_and_drops():
    D = nx.DiGraph(nx.karate_club_graph())
    x = np.random.default_rng(3).normal(size=34)
    trace = gossip_average(D, x, 800, protocol="push_sum", churn=0.2, drop=0.2, rng=3)
    assert trace.relative_errors[-1] < 1e-6 and trace.union_connected


def test_churn_and_drops_still_converge_on_connected_graph():
    G = nx.karate_club_graph()
    x = np.random.default_rng(0).normal(size=34)
    trace = gossip_average(G, x, 2000, churn=0.3, drop=0.3, rng=0, record="errors")
    rep = trace.report(1e-6)
    assert rep["converged"] and rep["union_connected"]
    assert rep["disconnected_rounds"] > 0  # converged although most rounds were disconnected


def test_report_says_why_when_a_node_never_comes_online():
    G = nx.karate_club_graph()
    trace = gossip_average(G, np.arange(34.0), 300, offline=[0], record="errors")
    rep = trace.report()
    assert not rep["converged"] and not rep["union_connected"]
    assert "disconnected" in rep["note"]


def test_delays_reach_consensus_near_the_mean():
    G = nx.karate_club_graph()
    x = np.random.default_rng(0).normal(size=34)
    trace = gossip_average(G, x, 3000, delay=2, rng=0, record="errors")
    rep = trace.report(1e-6)
    assert rep["final_disagreement"] < 1e-6
    assert abs(trace.final.mean() - x.mean()) < 0.5 * x.std()


def test_message_and_byte_counts():
    G = nx.cycle_graph(10)
    x = np.zeros((10, 4), dtype=np.float32)
    sync = gossip_average(G, x, 3)
    assert sync.messages.tolist() == [20, 20, 20]
    assert sync.bytes.tolist() == [20 * 4 * 4] * 3
    push = gossip_average(G, x, 2, protocol="push_sum")
    assert push.messages.tolist() == [20, 20]
    assert push.bytes.tolist() == [20 * (16 + 8)] * 2


@settings(max_examples=25)
@given(
    connected_graphs(),
    st.sampled_from(["sync", "pairwise", "push_sum"]),
    st.sampled_from([np.float32, np.float64]),
    st.integers(1, 4),
    st.floats(0.0, 0.5),
    st.integers(0, 1000),
)
def test_bytes_are_messages_times_payload(G, protocol, dtype, d, drop, seed):
    x = np.ones((len(G), d), dtype=dtype)
    trace = gossip_average(G, x, 5, protocol=protocol, drop=drop, rng=seed)
    extra = 8 if protocol == "push_sum" else 0  # push-sum also sends its weight (float64)
    itemsize = np.dtype(dtype).itemsize
    np.testing.assert_array_equal(trace.bytes, trace.messages * (d * itemsize + extra))


@settings(max_examples=25)
@given(connected_graphs(), st.floats(0.0, 0.5), st.integers(0, 1000))
def test_sync_counts_messages_lost_to_drops(G, drop, seed):
    trace = gossip_average(G, np.zeros(len(G)), 5, drop=drop, rng=seed)
    assert (trace.messages == 2 * G.number_of_edges()).all()


@settings(max_examples=25)
@given(
    connected_graphs(),
    st.sampled_from(["sync", "pairwise", "push_sum"]),
    st.floats(0.0, 0.4),
    st.integers(0, 2),
    st.integers(0, 1000),
)
def test_record_modes_agree(G, protocol, churn, delay, seed):
    delay = delay if protocol == "sync" else 0
    x = np.random.default_rng(seed).normal(size=(len(G), 2))
    kw = {"protocol": protocol, "churn": churn, "delay": delay, "rng": seed}
    full = gossip_average(G, x, 20, **kw)
    assert full.values.shape == (21, len(G), 2)
    np.testing.assert_array_equal(full.values[0], x)
    np.testing.assert_array_equal(full.values[-1], full.final)
    for record in ("errors", "last"):
        small = gossip_average(G, x, 20, record=record, **kw)
        assert small.values is None
        np.testing.assert_array_equal(small.final, full.final)
        np.testing.assert_array_equal(small.errors, full.errors)


def test_record_all_refuses_huge_histories():
    x = np.zeros((1000, 1000))
    with pytest.raises(GraphError, match="record='errors'"):  # 201 x 1e6 values > 2e8
        gossip_average(nx.path_graph(1000), x, 200)


def test_float32_stays_float32_under_noise():
    x = np.ones((6, 3), dtype=np.float32)
    trace = gossip_average(nx.cycle_graph(6), x, 3, noise=gaussian_noise(0.1), rng=0)
    assert trace.values.dtype == np.float32 and trace.final.dtype == np.float32


def test_noise_hook_must_keep_the_shape():
    with pytest.raises(GraphError, match="noise must return"):
        gossip_average(nx.path_graph(3), np.zeros(3), 1, noise=lambda v, rng: v[:1])


def test_same_seed_same_trace():
    G = nx.karate_club_graph()
    x = np.random.default_rng(0).normal(size=34)
    kw = {"protocol": "pairwise", "churn": 0.2, "noise": gaussian_noise(0.1), "rng": 9}
    a, b = gossip_average(G, x, 50, **kw), gossip_average(G, x, 50, **kw)
    np.testing.assert_array_equal(a.values, b.values)


def test_noise_hook_is_applied_to_messages_only():
    G = nx.complete_graph(2)
    trace = gossip_average(
        G, np.array([0.0, 0.0]), 1, protocol="pairwise", noise=lambda v, rng: v + 1.0
    )
    np.testing.assert_allclose(trace.final, [0.5, 0.5])


def test_gossip_arrays_round_trip():
    G = nx.cycle_graph(5)
    states = [{"a": np.full((2, 2), i, np.float32), "b": np.array([i * 2.0])} for i in range(5)]
    out, trace = gossip_arrays(G, states, 200)
    assert out[3]["a"].shape == (2, 2) and out[3]["a"].dtype == np.float64
    np.testing.assert_allclose(out[3]["a"], 2.0, atol=1e-6)
    np.testing.assert_allclose(out[0]["b"], [4.0], atol=1e-6)
    assert trace.values is None and trace.bytes[0] == 10 * 5 * 8


def test_gossip_arrays_rejects_mismatched_states():
    G = nx.path_graph(2)
    with pytest.raises(GraphError, match="keys"):
        gossip_arrays(G, [{"a": np.ones(1)}, {"b": np.ones(1)}], 1)
    with pytest.raises(GraphError, match="shape"):
        gossip_arrays(G, [{"a": np.ones(1)}, {"a": np.ones(2)}], 1)


def test_spread_trends_with_local_dp():
    G = nx.karate_club_graph()
    rng = np.random.default_rng(0)
    interests = rng.dirichlet(np.ones(4), size=34)
    exact = spread_trends(G, interests, 800)
    np.testing.assert_allclose(exact.final, np.broadcast_to(interests.mean(0), (34, 4)), atol=1e-6)
    noisy = spread_trends(G, interests, 800, epsilon=50.0, rng=1)
    assert np.abs(noisy.final - interests.mean(0)).max() < 0.2
    with pytest.raises(GraphError, match="rows summing"):
        spread_trends(G, interests * 2, 1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"protocol": "flood"}, "allowed: sync, pairwise, push_sum"),
        ({"churn": 1.0}, "churn must be a probability"),
        ({"drop": -0.1}, "drop must be a probability"),
        ({"delay": 1, "protocol": "pairwise"}, "delay is modelled"),
        ({"record": "some"}, "record must be"),
        ({"offline": [99]}, "offline node 99"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(GraphError, match=match):
        gossip_average(nx.path_graph(3), np.zeros(3), 2, **kwargs)


def test_bad_values_and_graph_kinds():
    with pytest.raises(GraphError, match="one row per node"):
        gossip_average(nx.path_graph(3), np.zeros(4), 1)
    with pytest.raises(GraphError, match="undirected"):
        gossip_average(nx.DiGraph([(0, 1), (1, 0)]), np.zeros(2), 1)
