"""With the server down, gossip over the social graph keeps the clients learning together."""

from __future__ import annotations

import networkx as nx
import numpy as np

from federation.gossip_fallback import decentralized_rounds
from federation.task import ClickTask


def test_gossip_fallback_tracks_fedavg_and_keeps_consensus():
    task, G = (
        ClickTask(seed=3, users_per_client=20),
        nx.connected_watts_strogatz_graph(8, 4, 0.2, seed=1),
    )
    up = decentralized_rounds(task, G, 4, server_up=lambda r: True, rng=0)
    down = decentralized_rounds(task, G, 4, server_up=lambda r: False, gossip_rounds=5, rng=0)
    alone = decentralized_rounds(task, G, 4, server_up=lambda r: False, gossip_rounds=0, rng=0)
    assert up.aggregation == ["server"] * 4 and down.aggregation == ["gossip"] * 4
    assert up.consensus[-1] < 1e-6
    assert down.consensus[-1] < 0.25 * alone.consensus[-1]  # gossip pulls models together
    assert down.ndcg[-1] > 0.95 * up.ndcg[-1]
    assert all(b > 0 for b in down.bytes_sent)


def test_outage_in_the_middle():
    task, G = ClickTask(seed=4, users_per_client=10), nx.cycle_graph(5)
    h = decentralized_rounds(task, G, 4, server_up=lambda r: r not in (1, 2), rng=1)
    assert h.aggregation == ["server", "gossip", "gossip", "server"]
    assert np.isfinite(h.ndcg).all()
