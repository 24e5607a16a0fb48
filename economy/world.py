"""Synthetic worlds: users with hidden category preferences, advertisers with values and budgets.

Ground truth (hidden from every agent): user ``u`` clicks an ad of category ``c`` shown in a slot
with CTR ``s`` with probability ``s x min(1, base_ctr x C x pref[u, c])``; preferences are
Dirichlet, so the mean CTR of a perfectly shown ad is ``base_ctr``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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
    """

    prefs: np.ndarray
    ad_category: np.ndarray
    values: np.ndarray
    budgets: np.ndarray
    strategies: np.ndarray
    base_ctr: float

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
    rng = seeds.generator("world")
    prefs = rng.dirichlet(np.full(m.categories, 0.5), size=m.users)
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
    )
