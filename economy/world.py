"""Synthetic worlds: users with hidden category preferences, advertisers with values and budgets.

Ground truth (hidden from every agent): user ``u`` clicks an ad of category ``c`` shown in a slot
with CTR ``s`` with probability ``s x min(1, base_ctr x C x pref[u, c])``; preferences are
Dirichlet, so the mean CTR of a perfectly shown ad is ``base_ctr``.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx
import numpy as np

from graphs import stochastic_block

from .config import ExperimentConfig
from .seeding import RunSeeds


@dataclass(frozen=True)
class World:
    """Everything the simulator knows and the agents do not.

    Attributes:
        prefs: (users, categories) float, each row sums to 1.
        ad_category: (advertisers,) int.
        values: (advertisers,) float, value per click.
        budgets: (advertisers,) float, budget per step.
        strategies: (advertisers,) str, bidding strategy name.
        base_ctr: CTR of a perfectly matched ad in a slot with CTR 1.
        community: (users,) int, each user's community.
        graph: social graph on users 0..users-1 (ties mostly inside communities).
    """

    prefs: np.ndarray
    ad_category: np.ndarray
    values: np.ndarray
    budgets: np.ndarray
    strategies: np.ndarray
    base_ctr: float
    community: np.ndarray
    graph: nx.Graph

    @property
    def n_users(self) -> int:
        return self.prefs.shape[0]

    @property
    def n_advertisers(self) -> int:
        return self.values.shape[0]

    def true_ctr(self, users: np.ndarray) -> np.ndarray:
        """(len(users), advertisers) click probability of each ad in a slot with CTR 1."""
        c = self.prefs.shape[1]
        return np.minimum(1.0, self.base_ctr * c * self.prefs[users][:, self.ad_category])


def make_world(cfg: ExperimentConfig, seeds: RunSeeds) -> World:
    """Draw a synthetic world from the config; the same seed gives the same world."""
    m, adv = cfg.market, cfg.advertisers
    soc = cfg.social
    rng = seeds.generator("world")
    # Communities share a taste; users scatter around it (homophily in preferences and ties).
    community = np.sort(rng.integers(0, soc.communities, size=m.users))
    tastes = rng.dirichlet(np.full(m.categories, 0.5), size=soc.communities)
    alpha = soc.taste_concentration * m.categories * tastes[community] + 0.05
    prefs = np.vstack([rng.dirichlet(a) for a in alpha])
    sizes = np.bincount(community, minlength=soc.communities).tolist()
    p_in, p_out = _tie_probabilities(sizes, soc.avg_degree, soc.homophily)
    graph = stochastic_block(sizes, p_in, p_out, rng=seeds.generator("graph"))
    ad_category = rng.integers(0, m.categories, size=m.advertisers)
    mu = np.log(adv.value_mean) - adv.value_sigma**2 / 2  # lognormal with the given mean
    values = rng.lognormal(mu, adv.value_sigma, size=m.advertisers)
    names = list(adv.strategies)
    weights = np.array([adv.strategies[k] for k in names], dtype=float)
    strategies = rng.choice(names, size=m.advertisers, p=weights / weights.sum())
    return World(
        prefs=prefs,
        ad_category=ad_category,
        values=values,
        budgets=np.full(m.advertisers, adv.budget_per_step),
        strategies=strategies,
        base_ctr=m.base_ctr,
        community=community,
        graph=graph,
    )


def _tie_probabilities(sizes: list[int], degree: float, homophily: float) -> tuple[float, float]:
    """SBM edge probabilities giving about ``degree`` ties per user, ``homophily`` of them
    inside the user's community."""
    n = sum(sizes)
    inside = sum(s * (s - 1) for s in sizes) / max(n, 1)  # mean possible ties inside
    outside = n - 1 - inside
    p_in = min(1.0, homophily * degree / inside) if inside > 0 else 0.0
    p_out = min(1.0, (1 - homophily) * degree / outside) if outside > 0 else 0.0
    return p_in, p_out
