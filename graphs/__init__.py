"""Social graphs, communities and gossip protocols (numpy, scipy and networkx only).

Example:
    >>> import numpy as np
    >>> from graphs import gossip_average, social_graph
    >>> G = social_graph("karate")
    >>> trace = gossip_average(G, np.arange(34.0), rounds=800, rng=0)
    >>> round(float(trace.final[0]), 3)
    16.5
"""

from ._errors import GraphError
from .communities import communities, ego_groups, homophily, k_core_nodes, membership
from .gossip import PROTOCOLS, GossipTrace, gossip_average
from .mixing import (
    metropolis_matrix,
    metropolis_weights,
    predicted_rounds,
    predicted_rounds_for,
    slem,
    spectral_gap,
)
from .noise import gaussian_noise, laplace_noise
from .social import (
    barabasi_albert,
    co_rating_graph,
    florentine_families,
    karate_club,
    les_miserables,
    powerlaw_cluster,
    social_graph,
    stochastic_block,
    torus,
    watts_strogatz,
)
from .spreading import gossip_arrays, spread_trends
from .topology import Topology

__all__ = [
    "PROTOCOLS",
    "GossipTrace",
    "GraphError",
    "Topology",
    "barabasi_albert",
    "co_rating_graph",
    "communities",
    "ego_groups",
    "florentine_families",
    "gaussian_noise",
    "gossip_arrays",
    "gossip_average",
    "homophily",
    "k_core_nodes",
    "karate_club",
    "laplace_noise",
    "les_miserables",
    "membership",
    "metropolis_matrix",
    "metropolis_weights",
    "powerlaw_cluster",
    "predicted_rounds",
    "predicted_rounds_for",
    "slem",
    "social_graph",
    "spectral_gap",
    "spread_trends",
    "stochastic_block",
    "torus",
    "watts_strogatz",
]
